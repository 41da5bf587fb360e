from __future__ import annotations

import dataclasses
import ssl
from pathlib import Path
from typing import Any

import pytest
from tls_certs import TLSFiles

from monoceros.config import Config
from monoceros.errors import ConfigError
from monoceros.server.tls import DEFAULT_ALPN, create_ssl_context


def tls_config(files: TLSFiles, **overrides: Any) -> Config:
    settings: dict[str, Any] = {"certfile": str(files.server_cert), "keyfile": str(files.server_key)}
    settings.update(overrides)
    return dataclasses.replace(Config(), **settings)


def handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> tuple[ssl.SSLObject, ssl.SSLObject]:
    """Run a handshake in memory, no sockets; raises whatever either side raises."""
    s_in, s_out, c_in, c_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname="localhost")
    done = {"server": False, "client": False}
    for _ in range(20):
        for name, obj in (("client", client), ("server", server)):
            if not done[name]:
                try:
                    obj.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            # TLS 1.3: the server checks the client certificate after the client thinks it is done.
            server.write(b"x")
            c_in.write(s_out.read())
            assert client.read(1) == b"x"
            client.write(b"y")
            s_in.write(c_out.read())
            assert server.read(1) == b"y"
            return server, client
    raise AssertionError("handshake did not finish")


def test_no_certfile_means_no_tls() -> None:
    assert create_ssl_context(Config()) is None


@pytest.mark.parametrize(
    ("setting", "value"),
    [("keyfile", "/k.pem"), ("keyfile_password", "pw"), ("ca_certs", "/ca.pem"), ("cert_reqs", "required")],
)
def test_tls_settings_without_certfile_are_errors(setting: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"{setting}.*certfile"):
        overrides: dict[str, Any] = {setting: value}
        create_ssl_context(dataclasses.replace(Config(), **overrides))


def test_server_context(tls_files: TLSFiles) -> None:
    ctx = create_ssl_context(tls_config(tls_files))
    assert ctx is not None
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.verify_mode == ssl.CERT_NONE
    server, client = handshake(ctx, tls_files.client_context())
    assert server.selected_alpn_protocol() is None  # the client offered none
    assert client.version() in ("TLSv1.2", "TLSv1.3")


def test_alpn_default_and_custom(tls_files: TLSFiles) -> None:
    assert DEFAULT_ALPN == ("http/1.1",)
    client_ctx = tls_files.client_context()
    client_ctx.set_alpn_protocols(["h2", "http/1.1"])
    ctx = create_ssl_context(tls_config(tls_files))
    assert ctx is not None
    assert handshake(ctx, client_ctx)[0].selected_alpn_protocol() == "http/1.1"
    ctx = create_ssl_context(tls_config(tls_files), alpn_protocols=("h2", "http/1.1"))
    assert ctx is not None
    assert handshake(ctx, client_ctx)[0].selected_alpn_protocol() == "h2"


def test_key_inside_certfile(tls_files: TLSFiles) -> None:
    cfg = dataclasses.replace(Config(), certfile=str(tls_files.server_combined))
    ctx = create_ssl_context(cfg)
    assert ctx is not None
    handshake(ctx, tls_files.client_context())


def test_encrypted_key(tls_files: TLSFiles) -> None:
    cfg = tls_config(tls_files, keyfile=str(tls_files.server_key_encrypted), keyfile_password=tls_files.key_password)
    ctx = create_ssl_context(cfg)
    assert ctx is not None
    handshake(ctx, tls_files.client_context())


def test_wrong_password(tls_files: TLSFiles) -> None:
    cfg = tls_config(tls_files, keyfile=str(tls_files.server_key_encrypted), keyfile_password="nope")
    with pytest.raises(ConfigError, match=r"keyfile '.*server-key-encrypted\.pem'.*keyfile_password"):
        create_ssl_context(cfg)


def test_encrypted_key_without_password_never_prompts(tls_files: TLSFiles) -> None:
    cfg = tls_config(tls_files, keyfile=str(tls_files.server_key_encrypted))
    with pytest.raises(ConfigError, match=r"keyfile .*encrypted; set keyfile_password"):
        create_ssl_context(cfg)


def test_missing_files(tls_files: TLSFiles, tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.pem")
    with pytest.raises(ConfigError, match=r"certfile '.*missing\.pem': file not found"):
        create_ssl_context(tls_config(tls_files, certfile=missing))
    with pytest.raises(ConfigError, match=r"keyfile '.*missing\.pem': file not found"):
        create_ssl_context(tls_config(tls_files, keyfile=missing))
    with pytest.raises(ConfigError, match=r"ca_certs '.*missing\.pem': file not found"):
        create_ssl_context(tls_config(tls_files, ca_certs=missing))
    with pytest.raises(ConfigError, match=r"certfile .*not a regular file"):
        create_ssl_context(tls_config(tls_files, certfile=str(tmp_path)))


def test_garbage_files(tls_files: TLSFiles, tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match=r"certfile '.*junk\.pem': no PEM certificate"):
        create_ssl_context(tls_config(tls_files, certfile=str(junk)))
    with pytest.raises(ConfigError, match=r"keyfile '.*junk\.pem': no PEM private key"):
        create_ssl_context(tls_config(tls_files, keyfile=str(junk)))
    with pytest.raises(ConfigError, match=r"certfile '.*server\.pem': no PEM private key"):
        create_ssl_context(tls_config(tls_files, keyfile=None))
    with pytest.raises(ConfigError, match=r"ca_certs '.*junk\.pem': cannot load CA certificates"):
        create_ssl_context(tls_config(tls_files, ca_certs=str(junk)))


def test_key_that_does_not_match(tls_files: TLSFiles) -> None:
    with pytest.raises(ConfigError, match=r"keyfile '.*client-key\.pem': the key does not match"):
        create_ssl_context(tls_config(tls_files, keyfile=str(tls_files.client_key)))


def test_bad_ciphers(tls_files: TLSFiles) -> None:
    with pytest.raises(ConfigError, match=r"ciphers 'NOPE-CIPHER'"):
        create_ssl_context(tls_config(tls_files, ciphers="NOPE-CIPHER"))


def test_custom_ciphers(tls_files: TLSFiles) -> None:
    ctx = create_ssl_context(tls_config(tls_files, ciphers="ECDHE+AESGCM"))
    assert ctx is not None
    names = {c["name"] for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.2"}
    assert names
    assert all("GCM" in n for n in names)


@pytest.mark.parametrize(("reqs", "mode"), [("optional", ssl.CERT_OPTIONAL), ("required", ssl.CERT_REQUIRED)])
def test_client_certificates(tls_files: TLSFiles, reqs: str, mode: ssl.VerifyMode) -> None:
    ctx = create_ssl_context(tls_config(tls_files, ca_certs=str(tls_files.ca_cert), cert_reqs=reqs))
    assert ctx is not None
    assert ctx.verify_mode == mode
    server, _ = handshake(ctx, tls_files.client_context(with_cert=True))
    peer = server.getpeercert()
    assert peer is not None
    assert ("commonName", "test client") in [rdn[0] for rdn in peer["subject"]]
    with pytest.raises(ssl.SSLError):
        handshake(ctx, tls_files.client_context(stranger=True))
    if reqs == "optional":
        server, _ = handshake(ctx, tls_files.client_context())
        assert not server.getpeercert()
    else:
        with pytest.raises(ssl.SSLError):
            handshake(ctx, tls_files.client_context())


def test_cert_reqs_needs_ca_certs(tls_files: TLSFiles) -> None:
    with pytest.raises(ConfigError, match="cert_reqs 'required' needs ca_certs"):
        create_ssl_context(tls_config(tls_files, cert_reqs="required"))


def test_unknown_cert_reqs(tls_files: TLSFiles) -> None:
    with pytest.raises(ConfigError, match="cert_reqs 'sometimes'"):
        create_ssl_context(tls_config(tls_files, cert_reqs="sometimes"))
