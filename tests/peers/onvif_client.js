// npm's `onvif` client (a third party's reading of ONVIF) driving a camera, for the test suite.
// usage: node onvif_client.js ONVIF_MODULE_DIR HOST PORT USER PASSWORD
// Prints one JSON object with what each call the gateway relies on returned, or the first error.
'use strict';
const [moduleDir, hostname, port, username, password] = process.argv.slice(2);
const onvif = require(moduleDir);

const out = {};
const fail = (step, err) => {
	out.error = `${step}: ${err && err.message ? err.message : err}`;
	console.log(JSON.stringify(out));
	process.exit(1);
};
setTimeout(() => fail('overall', 'timed out after 20 s'), 20000).unref();

const cam = new onvif.Cam({hostname, port: Number(port), username, password, timeout: 5000, autoconnect: false});
cam.on('warning', (w) => { (out.warnings = out.warnings || []).push(String(w)); });
cam.connect((err) => {
	if (err) return fail('connect', err);
	out.profiles = cam.profiles.map((p) => p.$.token);
	out.videoSources = Array.isArray(cam.videoSources) ? cam.videoSources.length : (cam.videoSources ? 1 : 0);
	cam.getDeviceInformation((err, info) => {
		if (err) return fail('GetDeviceInformation', err);
		out.device = info;
		cam.getSystemDateAndTime((err, date) => {
			if (err) return fail('GetSystemDateAndTime', err);
			out.clockSkewS = (date.getTime() - Date.now()) / 1000;
			cam.getStreamUri({protocol: 'RTSP', profileToken: out.profiles[0]}, (err, stream) => {
				if (err) return fail('GetStreamUri', err);
				out.streamUri = stream.uri;
				cam.getSnapshotUri({profileToken: out.profiles[0]}, (err, snap) => {
					if (err) return fail('GetSnapshotUri', err);
					out.snapshotUri = snap.uri;
					cam.getScopes((err, scopes) => {
						if (err) return fail('GetScopes', err);
						out.scopes = scopes.map((s) => s.scopeItem);
						cam.createPullPointSubscription((err) => {
							if (err) return fail('CreatePullPointSubscription', err);
							cam.pullMessages({timeout: 1000, messageLimit: 10}, (err, events) => {
								if (err) return fail('PullMessages', err);
								const msgs = events && events.notificationMessage;
								const list = msgs ? (Array.isArray(msgs) ? msgs : [msgs]) : [];
								out.events = list.map((m) => m.topic._);
								cam.unsubscribe(() => {
									console.log(JSON.stringify(out));
									process.exit(0);
								});
							});
						});
					});
				});
			});
		});
	});
});
