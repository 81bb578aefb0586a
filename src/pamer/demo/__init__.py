"""pamer.demo: the offline demo, above the readers, the cache and the engine that it drives.

`synthetic` renders the demo set (synthetic micro-expressions on real faces, as a CASME II tree and coding sheet),
`settings` holds the demo's defaults and LOSO configuration, and `run` is the pipeline `pamer demo` runs
(`run_demo`). Nothing is imported here, so `pamer demo`'s options read `settings` without loading torch.
"""
