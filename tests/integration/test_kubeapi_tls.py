"""The engine's API calls (controller/kubeapi.py: its own urllib3 pool, not the typed client's) against the real
API server's TLS: a bearer token, a client certificate, the kubeconfig's tls-server-name, and the refusals a
wrong CA or server name must give."""

from __future__ import annotations

import subprocess
from pathlib import Path

import devcluster  # type: ignore[import-not-found]  # hack/, on the path through conftest
import pytest
import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from suanli.controller.kubeapi import KubeApi


def _client_cert(pki: Path, out: Path) -> tuple[Path, Path]:
    """A client certificate the cluster's CA signs for a system:masters user (the API server's --client-ca-file)."""
    key, csr, crt = out / "admin.key", out / "admin.csr", out / "admin.crt"
    subprocess.run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/O=system:masters/CN=cert-admin",
                    "-keyout", str(key), "-out", str(csr)], check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(pki / "ca.crt"), "-CAkey",
                    str(pki / "ca.key"), "-CAcreateserial", "-days", "1", "-out", str(crt)],
                   check=True, capture_output=True)
    return crt, key


def _config(cluster: devcluster.Cluster, **settings: object) -> client.Configuration:
    cfg = client.Configuration(host=f"https://127.0.0.1:{cluster.api_port}")
    cfg.ssl_ca_cert = str(cluster.dir / "pki" / "ca.crt")
    for name, value in settings.items():
        setattr(cfg, name, value)
    return cfg


def _kube(cfg: client.Configuration) -> KubeApi:
    return KubeApi(client.ApiClient(cfg), timeout=10, attempts=1)


def test_a_client_certificate_and_a_bearer_token_both_authenticate(
    cluster: devcluster.Cluster, tmp_path: Path
) -> None:
    crt, key = _client_cert(cluster.dir / "pki", tmp_path)
    by_cert = _kube(_config(cluster, cert_file=str(crt), key_file=str(key)))
    assert by_cert.request("GET", "/api/v1/namespaces/default/services")["kind"] == "ServiceList"
    token = (cluster.dir / "pki" / "admin.token").read_text().strip()
    by_token = _kube(_config(cluster, api_key={"authorization": f"Bearer {token}"}))
    for _ in range(3):  # one kept-alive connection serves them all
        assert by_token.request("GET", "/api/v1/namespaces/default/services")["kind"] == "ServiceList"
    anonymous = _kube(_config(cluster))
    with pytest.raises(ApiException) as err:
        anonymous.request("GET", "/api/v1/namespaces/default/services")
    assert err.value.status in (401, 403)


def test_the_server_name_is_checked_and_tls_server_name_overrides_it(cluster: devcluster.Cluster) -> None:
    token = (cluster.dir / "pki" / "admin.token").read_text().strip()
    auth = {"authorization": f"Bearer {token}"}
    # The serving certificate names 127.0.0.1, localhost and kubernetes.default.svc, not this name.
    wrong = _kube(_config(cluster, api_key=auth, tls_server_name="elsewhere.example"))
    with pytest.raises(ApiException) as err:
        wrong.request("GET", "/api/v1/namespaces/default/services")
    assert err.value.status == 0 and "certificate" in str(err.value.reason).lower()
    renamed = _kube(_config(cluster, api_key=auth, tls_server_name="kubernetes.default.svc"))
    assert renamed.request("GET", "/api/v1/namespaces/default/services")["kind"] == "ServiceList"


def test_a_server_the_ca_did_not_sign_is_refused(cluster: devcluster.Cluster, tmp_path: Path) -> None:
    other_ca = tmp_path / "other-ca.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=other",
                    "-keyout", str(tmp_path / "other-ca.key"), "-out", str(other_ca)], check=True, capture_output=True)
    token = (cluster.dir / "pki" / "admin.token").read_text().strip()
    stranger = _kube(_config(cluster, api_key={"authorization": f"Bearer {token}"}, ssl_ca_cert=str(other_ca)))
    with pytest.raises(ApiException) as err:
        stranger.request("GET", "/api/v1/namespaces/default/services")
    assert err.value.status == 0 and "certificate verify failed" in str(err.value.reason)
    insecure = _kube(_config(cluster, api_key={"authorization": f"Bearer {token}"}, ssl_ca_cert=str(other_ca),
                             verify_ssl=False))
    with pytest.warns(urllib3.exceptions.InsecureRequestWarning):  # insecure-skip-tls-verify: allowed, not silent
        assert insecure.request("GET", "/api/v1/namespaces/default/services")["kind"] == "ServiceList"
