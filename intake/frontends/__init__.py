"""Front-ends: protocol in, service calls, errors out as protocol codes. Nothing else.

Packages, each a layer over the next (``make lint`` checks it): ``cli`` (the ``intake``
command) over ``daemon`` (``intake serve``: start, signals, heartbeat, metrics endpoint)
over ``sftp`` and ``ftps`` (independent of each other) over ``listener`` (TCP accept and
admission, shared by both).
"""
