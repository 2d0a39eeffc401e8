"""Collision events in: the event model (:mod:`~imgen.events.model`), the input files and their classes
(:mod:`~imgen.events.inputs`), one reader per kind of file (:mod:`~imgen.events.readers`) over CMS open-data JSON
(:mod:`~imgen.events.cms_json`) and NanoAOD ROOT files (:mod:`~imgen.events.nanoaod`, and its inverse
:mod:`~imgen.events.nanoaod_write`)."""
