"""The HTTP API: ``schemas`` (request and response models, Ray-free, shared with the client),
``_http`` (the FastAPI app's plumbing) and ``ingress`` (the Ray Serve deployment). Importing
the package imports none of them."""
