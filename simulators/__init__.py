"""Real peers for tests and the demo site: an ONVIF camera, an RTSP server script, a scene generator."""
