# Starts SecantusDB (a MongoDB-wire-compatible server, used by the tests only) on 127.0.0.1:PORT
# with its data in memory and the TTL monitor sweeping every second (the CLI sweeps every 60 s).
# Usage: python secantus-launch.py PORT
import signal
import sys

from secantus import SecantusDBServer

server = SecantusDBServer(host="127.0.0.1", port=int(sys.argv[1]), storage_path=":memory:",
                          ttl_sweep_seconds=1, enable_test_commands=False)


def stop(*_):
    server.stop()
    sys.exit(0)


signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
server.start()
print(f"listening {server.address}", flush=True)
server.wait()
