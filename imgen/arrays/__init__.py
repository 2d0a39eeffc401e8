"""Calorimeter image arrays from HDF5: everything hepvision knows about them, in one place.

Three layouts are read the same way (see :func:`resolve_source`):

1. one file with images under one key and integer labels under another
   (``--data all.h5 --x-key X --y-key y --classes electron,photon``);
2. one or more files per class, the class from the file or folder
   (``--data electron=e.h5 photon=dir/`` or ``photon='p_*.h5'``);
3. one file per class holding several detector layers of different shapes
   (``--x-key layer_0,layer_1,layer_2``), resampled onto one grid and stacked
   as channels (see :func:`resample_to_grid`).

Modules, each with one job (data flows down the list):

* :mod:`imgen.arrays.files`: which files, keys and classes ``--data`` names
  (HDF5 suffixes, ``CLASS=FILE`` items, listing a file's datasets);
* :mod:`imgen.arrays.reader`: :class:`ArrayDataset`, lazy chunked reads,
  layers resampled onto one grid, each row's identity ``file#row`` and its
  split (:func:`split_indices`, the project's one rule);
* :mod:`imgen.arrays.transform`: :class:`ArrayTransform`, the preprocessing
  fitted on the training split only;
* :mod:`imgen.arrays.export`: :func:`~imgen.arrays.export.export_pngs`, the
  library face of ``python -m imgen arrays``;
* :mod:`imgen.arrays.synth`: small, plausible HDF5 files for tests, demos and
  notebooks.

``transfer`` asks these modules and keeps only its ``tf.data`` streaming. Pure
NumPy + h5py: nothing here imports TensorFlow.

Example::

    from imgen.arrays import open_arrays
    with open_arrays(["electron=e.h5", "photon=p.h5"], "X") as ds:
        x, y = ds.read_batch([0, 5, 7])
"""
from imgen.arrays.files import (H5_SUFFIXES, ArrayDataError, ArrayPart, ArraySource, expand_target, file_event_names,
                                first_hdf5_file, holds_hdf5, is_hdf5_name, item_target, list_datasets, named_item,
                                resolve_source, split_keys)
from imgen.arrays.reader import (DEFAULT_BLOCK_EVENTS, DEFAULT_CHUNK_EVENTS, ArrayDataset, default_grid, open_arrays,
                                 overlap_matrix, resample_to_grid, split_indices, split_method)
from imgen.arrays.transform import SCALES, ArrayTransform, crop_box, fit_transform, parse_channels

__all__ = [
    "H5_SUFFIXES", "ArrayDataError", "ArrayPart", "ArraySource", "expand_target", "file_event_names",
    "first_hdf5_file", "holds_hdf5", "is_hdf5_name", "item_target", "list_datasets", "named_item",
    "resolve_source", "split_keys",
    "DEFAULT_BLOCK_EVENTS", "DEFAULT_CHUNK_EVENTS", "ArrayDataset", "default_grid", "open_arrays",
    "overlap_matrix", "resample_to_grid", "split_indices", "split_method",
    "SCALES", "ArrayTransform", "crop_box", "fit_transform", "parse_channels",
]
