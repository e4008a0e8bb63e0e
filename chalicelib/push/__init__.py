"""`stratus push`: images from docker, podman, archives and layouts into a registry, with
layers of any size through Stratus's `_stratus` direct uploads (docs/push.md).

Self-contained (relative imports, `requests` its one dependency) so that it installs on its
own as the `stratus` command (clients/pyproject.toml), without the server's dependencies.
"""
