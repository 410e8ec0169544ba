#!/usr/bin/env bash
# `make run`: serves www/ with build/portico at http://127.0.0.1:8080/ when the server exists;
# until then it runs the engine's echo example and says how to talk to it.
set -eu
cd "$(dirname "$0")/.."
if [ -x build/portico ]; then
	echo "Portico serving $(pwd)/www at http://127.0.0.1:8080/  (Ctrl-C stops it)"
	exec build/portico -l 127.0.0.1:8080 www
fi
echo "The HTTP server is not built yet; running the engine's echo example instead."
echo "Talk to it with:   python3 -c 'import socket;s=socket.create_connection((\"127.0.0.1\",7000));s.sendall(b\"hi\\n\");print(s.recv(99))'"
echo "or:                curl -s telnet://127.0.0.1:7000 <<< hello   (Ctrl-C stops the server)"
exec build/examples/echo -l 127.0.0.1:7000
