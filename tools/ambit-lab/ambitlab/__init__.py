"""ambit-lab internals: manifests -> plan (pure) -> system changes (privileged)."""
