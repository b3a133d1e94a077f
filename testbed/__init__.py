"""cdnstore's harnesses: the real parts the tests, the benchmarks and `cdnstore demo` run cdnstore against,
kept out of the product (its own small distribution, testbed/pyproject.toml; `python3 dev.py` installs it
beside cdnstore for the demo, the tests, lint, typecheck and bench).

- `seaweed`: local SeaweedFS S3 servers (`weed mini`);
- `rgw`: a single-node Ceph RADOS Gateway;
- `postgres`: a throwaway PostgreSQL cluster;
- `daemon`: `cdnstore serve` as a process of its own;
- `faultproxy`: a TCP proxy that stalls, cuts, slows or corrupts on demand;
- `oidc_provider`: a real OpenID provider (Node), for the single sign-on tests;
- `webhooks`: a sink that records the webhooks sent to it;
- `ports`: loopback ports;
- `demo`: `cdnstore demo` (five SeaweedFS servers in the original's layout, the daemon, demo users).

It builds on cdnstore; nothing in cdnstore builds on it (the CLI's `demo` command imports `demo` when run).
"""
