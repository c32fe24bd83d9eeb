"""Recognize: vehicle model recognition for dealer audit photos.

The packages, by what they may touch (one way: core knows nothing of the others):

- ``service.core``: the pure pieces (VIN decoder, imaging, verdict, taxonomy, model-file
  contract, errors), no Ray, HTTP or onnxruntime;
- ``service.inference``: onnxruntime sessions and the Classifier deployment;
- ``service.api``: the HTTP API (schemas, the FastAPI plumbing, the Ingress deployment);
- ``service.client``: the typed client for callers, without Ray;
- ``service.modeltools``: export and other model tooling (the ``models`` extra);
- ``service.app`` builds the Serve application (``service.app:build_app``), ``service.local``
  runs it on a local node, ``service.settings`` is the one settings object.
"""

__version__ = "0.1.0"
