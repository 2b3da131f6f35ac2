"""The nginx reverse-proxy configuration in front of the workers (docs/nginx.conf is this, for two workers).

Every socket and request of one call (``/v1/calls/<id>/...``) goes to the worker its call id hashes to, so a
call's source and sidebars normally meet on one worker; if that worker is down or draining, nginx picks the
next one and the call resumes there (Redis and PostgreSQL hold what it needs). Everything else (alerts feed,
``/v1/analyze``, pages) spreads over the workers. WebSockets are proxied with the ``Upgrade`` headers and long
read timeouts (a source may stay quiet between chunks).

Example:
    >>> "server 127.0.0.1:8001" in nginx_config([8001, 8002], listen=8080)
    True
"""

from __future__ import annotations

from collections.abc import Sequence

_TEMPLATE = """\
# nginx in front of several `assistant serve` workers (README: "Several workers").
# Run it with its files under a prefix folder:  nginx -p var/cluster/nginx/ -c "$PWD/docs/nginx.conf"
# (`make run-cluster` starts one like it, generated for its number of workers, on port {listen}.)
worker_processes 1;
pid nginx.pid;
error_log logs/error.log warn;

events {{
    worker_connections 4096;
}}

http {{
    access_log off;
    client_body_temp_path tmp/body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;

    # A call's requests and sockets hash to one worker by call id; other requests spread at random.
    map $uri $assistant_route {{
        ~^/v1/calls/([^/]+) $1;
        default $request_id;
    }}

    # WebSocket upgrade: pass the client's Upgrade header on, and "Connection: upgrade" with it.
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        "" close;
    }}

    upstream assistant {{
        hash $assistant_route consistent;
{servers}
    }}

    server {{
        listen 127.0.0.1:{listen};

        location / {{
            proxy_pass http://assistant;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            # Sockets stay open for the whole call; the source may be quiet between chunks.
            proxy_read_timeout 1h;
            proxy_send_timeout 1h;
            # A worker that is down or shutting down: try the next one (the call resumes there).
            proxy_next_upstream error timeout http_502 http_503;
            proxy_connect_timeout 2s;
        }}
    }}
}}
"""


def nginx_config(worker_ports: Sequence[int], *, listen: int, host: str = "127.0.0.1") -> str:
    """The configuration text for workers on ``host:worker_ports``, nginx listening on ``listen``."""
    servers = "\n".join(f"        server {host}:{p} max_fails=1 fail_timeout=5s;" for p in worker_ports)
    return _TEMPLATE.format(servers=servers, listen=listen)
