"""Everything a rendering run writes, and the promises it keeps.

* An interrupted run never leaves half a file in place: images are written into a staging folder
  (:mod:`~imgen.output.staging`) and reach ``OUT/<class>/`` by ``os.replace`` once complete; the manifest
  (:mod:`~imgen.output.manifest`), the HDF5 file (:mod:`~imgen.output.hdf5`) and the configuration
  (:mod:`~imgen.output.settings`) are written under a temporary name in their final folder, then replaced.
* A malformed input file never leaves half an output: the images of one input file are staged and moved only
  once the whole file has been read; a file that turns out malformed half-way has its staging folder deleted; a
  run that is killed leaves it for the next run to reuse (resume).
* Resume: an image that already exists (in place or staged) is not rendered again, unless ``overwrite``, when
  the record inside it (:mod:`~imgen.output.provenance`: source file, event, settings fingerprint) is the one of
  the event being rendered. A run with other settings is refused as a whole (``imgen-config.json``) unless it
  overwrites. After a complete unsharded run, images of earlier runs that the manifest no longer lists are
  removed.
* One run per output folder (:mod:`~imgen.output.lock`); shards of a batch farm write their own manifests,
  joined by ``merge-shards`` (:mod:`~imgen.output.shards`). Image names and the reading rule:
  :mod:`~imgen.output.images`.
"""
