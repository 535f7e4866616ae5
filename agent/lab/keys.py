"""ed25519 keys for the lab: one client key per lab, one host key per host.

Generated in-process (a few microseconds each) instead of with ssh-keygen: at hundreds of hosts the
process spawns would dominate, and RSA would cost about 0.3 s per host.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


@dataclass(frozen=True)
class KeyPair:
    private_openssh: bytes  # OpenSSH PEM, unencrypted
    public_openssh: str  # "ssh-ed25519 AAAA... comment"


def generate_ed25519(comment: str) -> KeyPair:
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return KeyPair(private_openssh=private, public_openssh=f"{public} {comment}")
