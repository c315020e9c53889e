"""A throwaway certificate authority and a server certificate for 127.0.0.1/localhost."""

import os
import subprocess


def make_test_certificates(directory):
    """Create ``ca.pem`` and a ``server.pem``/``server.key`` signed by it; return their paths."""
    paths = {name: os.path.join(directory, name) for name in ("ca.pem", "ca.key", "server.pem", "server.key")}
    if all(os.path.exists(path) for path in paths.values()):
        return paths
    os.makedirs(directory, exist_ok=True)
    ext = os.path.join(directory, "server.ext")
    with open(ext, "w") as handle:
        handle.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                     "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
    run = lambda *args: subprocess.run(["openssl", *args], check=True, capture_output=True)  # noqa: E731
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30", "-subj", "/CN=onpipeline test CA",
        "-keyout", paths["ca.key"], "-out", paths["ca.pem"],
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    csr = os.path.join(directory, "server.csr")
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", paths["server.key"], "-out", csr)
    run("x509", "-req", "-in", csr, "-CA", paths["ca.pem"], "-CAkey", paths["ca.key"], "-CAcreateserial",
        "-days", "30", "-extfile", ext, "-out", paths["server.pem"])
    return paths
