"""GB/T 28181: the box as a lower-level platform of the county video platform.

``sip`` (messages and digest) and ``manscdp`` (XML bodies) are pure; ``transport`` carries SIP
over UDP or TCP; ``channel`` is the supervised link that registers, keeps alive, answers queries
and sends alarms from the outbox.
"""
