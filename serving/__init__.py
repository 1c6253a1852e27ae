"""Serving the exported GANimation generator (tf_ganimation/export/saved_model.py) with TF Serving's APIs.

- `client`: gRPC and REST clients, identical behaviour on both (a package: the library, and its command
  line `python -m serving.client` in `client.command_line`).
- `rest_json`: tensors in TF Serving's REST JSON, the one conversion the REST server and client share.
- `local_server`: `python -m serving.local_server`, a development stand-in for tensorflow_model_server
  that speaks TF Serving's gRPC and REST APIs over the same SavedModel (built from `manager`, `servable`,
  `grpc_service`, `rest`, `status`).
- `models.config`, `batching_parameters.txt`, `docker-compose.yml`: production with tensorflow_model_server.

See serving/README.md.
"""
