"""toxiproxy-python (PyPI `toxiproxy-python`) against harness's Toxiproxy control API.

Usage: toxiproxy_client.py API_PORT COMMAND ARGS...
  create NAME UPSTREAM        prints the proxy's listen address
  latency NAME MILLISECONDS   adds a downstream latency toxic
  remove NAME TOXIC           removes a toxic
  toxics NAME                 prints the toxics as `name type key=value...`
  destroy-all
"""
import sys

from toxiproxy import Toxiproxy
from toxiproxy.exceptions import NotFound

port, command, args = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
server = Toxiproxy()
server.update_api_consumer("127.0.0.1", port)
assert server.running(), "the control API is not reachable"

if command == "create":
    name, upstream = args
    print(server.create(upstream=upstream, name=name).listen)
elif command == "latency":
    name, ms = args
    server.get_proxy(name).add_toxic(type="latency", attributes={"latency": int(ms)})
elif command == "remove":
    name, toxic = args
    server.get_proxy(name).destroy_toxic(toxic)
elif command == "toxics":
    for t in server.get_proxy(args[0]).toxics().values():
        attrs = " ".join(f"{k}={v}" for k, v in sorted(t.attributes.items()))
        print(f"{t.name} {t.type} {t.stream} {attrs}")
elif command == "missing":
    try:
        server.get_proxy("py").destroy_toxic("no_such_toxic")
    except NotFound as e:
        print(f"NotFound {e}")
elif command == "destroy-all":
    server.destroy_all()
    print(len(server.proxies()))
else:
    sys.exit(f"unknown command {command}")
