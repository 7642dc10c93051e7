# Benchmark peer of runner-fleet's host phase (bench/converge.ts), the same work as bench/ansible/converge.yml:
# Docker present, the registries merged into daemon.json (other keys and entries kept, compared as JSON), dockerd
# running, reload on a change, `docker info` lists every registry as insecure. Run with --sudo.
# The registries come from the inventory's data (insecure_registries), written by bench/lib/pyinfra.ts.
import json
from io import StringIO

from pyinfra import host
from pyinfra.facts.files import FileContents
from pyinfra.facts.server import Command
from pyinfra.operations import apt, files, server

wanted = list(host.data.insecure_registries)

# runner-fleet's `docker: auto`: the snap when it is installed, else apt docker.io.
snap = host.get_fact(Command, "snap list docker >/dev/null 2>&1 && echo snap || echo apt") == "snap"
path = "/var/snap/docker/current/config/daemon.json" if snap else "/etc/docker/daemon.json"
unit = "snap.docker.dockerd" if snap else "docker"

if not snap:
    apt.packages(name="Install docker.io (apt)", packages=["docker.io"])

lines = host.get_fact(FileContents, path=path)
current = json.loads("\n".join(lines)) if lines else {}
listed = list(current.get("insecure-registries", []))
merged = dict(current, **{"insecure-registries": listed + [r for r in wanted if r not in listed]})

wrote = None
if merged != current:
    files.directory(name="The daemon.json folder exists", path=path.rsplit("/", 1)[0], mode="755")
    wrote = files.put(name="Write daemon.json", src=StringIO(json.dumps(merged, indent=2) + "\n"), dest=path, mode="644")

# Started only when it is not running (a fact, so a no-op rerun reports no change).
if host.get_fact(Command, f"systemctl is-active {unit} || true") != "active":
    server.shell(name="dockerd is running", commands=[f"systemctl start {unit}"])

check = (
    "docker info --format '{{json .RegistryConfig.IndexConfigs}}' | python3 -c "
    "'import json,sys; c=json.load(sys.stdin); w=sys.argv[1:]; "
    "sys.exit(0 if all(r in c and not c[r][\"Secure\"] for r in w) else 1)' " + " ".join(wanted)
)
if wrote is not None:
    reload = "snap restart docker" if snap else "systemctl reload docker"
    server.shell(name="Reload Docker", commands=[reload], _if=wrote.did_change)
    server.shell(name="docker info lists every registry as insecure", commands=[f"for i in $(seq 20); do {check} && exit 0; sleep 1; done; exit 1"], _if=wrote.did_change)
elif host.get_fact(Command, f"{check} && echo ok || echo missing") != "ok":
    # Nothing to write but dockerd does not list them (not reloaded since): reload, then check.
    server.shell(name="Reload Docker", commands=["snap restart docker" if snap else "systemctl reload docker", f"for i in $(seq 20); do {check} && exit 0; sleep 1; done; exit 1"])
