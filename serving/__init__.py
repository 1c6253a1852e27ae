"""Serving the exported GANimation generator (tf_ganimation/export.py) with TF Serving's APIs.

- `client`: gRPC and REST clients (library and `python -m serving.client`), identical behaviour on both.
- `local_server`: `python -m serving.local_server`, a development stand-in for tensorflow_model_server
  that speaks TF Serving's gRPC and REST APIs over the same SavedModel (built from `manager`, `servable`,
  `grpc_service`, `rest`, `status`).
- `models.config`, `batching_parameters.txt`, `docker-compose.yml`: production with tensorflow_model_server.

See serving/README.md.
"""
