"""Deployment: the policy server, its robot-side client and broker, latency benchmarks and ONNX export.

`protocol`, `client` and `broker` need only numpy, msgpack and websockets (the robot side);
`server`, `backend` and `onnx` run the model.
"""
