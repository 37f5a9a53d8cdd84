"""Dev only, never deployed: the gateway on this machine, by role.

- `aws/`: template.yaml's stack built in moto, the real handlers run in this process;
- `fake_upstream/`: the fake imagepipeline.io (`python -m local.fake_upstream`);
- `stack/`: the stack process (`python -m local.stack`, `make run`), its HTTP gateway and console;
- `http_server`: the threaded HTTP server the fake upstream and the gateway share;
- `demo`: `make demo` (`python -m local.demo`).

The API-key tool is the package's (`imagegateway-keys`, imagegateway.entrypoints.key_admin).
"""
