"""pamer.demo: the offline demo, above the readers, the cache and the engine that it drives.

`synthetic` renders the demo set (synthetic micro-expressions on real faces, as a CASME II tree and coding sheet).
"""
