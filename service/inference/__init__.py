"""Running the model with onnxruntime: ``session`` (one session, the options every server
uses), ``predictor`` (the service's pipeline in one process, Ray-free) and ``classifier`` (the
Ray Serve deployment with dynamic batching). Importing the package imports none of them."""
