"""Backups to S3-compatible storage: moto's S3 server on loopback plays the
provider. What is backed up comes back whole, Debian's `restic -r s3:...`
reads it, and failures are failures.

Two moto servers: `s3` without signature checks, for backups, and `s3_iam`
with its IAM checks on, for wrong keys (a wrong secret is
SignatureDoesNotMatch, an unknown key InvalidAccessKeyId, as on AWS). moto
5's check recomputes the signature from the decoded query, so it refuses any
request with a slash in a query value, boto3's as well as ours (a listing of
`keys/`, say): with its checks on, the tests use the bucket's top (prefix
""), whose first request, the listing of `config`, has none.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from harness import ALICE, BOB, Pochta, traversable, unique_id
from testca import TestCA
from test_backup import (
    assert_restore_equals_live,
    backup_folder,
    backup_now,
    box_key,
    deliver,
    owned_folder,
    restic,
    verify,
)


def only_report(out: dict) -> dict:
    """The one destination's report in `backup now|verify --json`."""
    [dest] = out["destinations"]
    assert dest["ok"] is True, dest
    return dest["report"]

REGION = "us-east-1"


def need(module: str, package: str):
    try:
        return __import__(module)
    except ImportError:
        if os.environ.get("POCHTA_REQUIRE_TOOLS") == "1":
            pytest.fail(f"{module} is missing: python3 -m pip install '{package}'")
        pytest.skip(f"{module} is missing: python3 -m pip install '{package}'")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class S3Service:
    """`python3 -m moto.server` on 127.0.0.1, started and stopped by the
    test. With `iam`, a user with every right and its keys are made, then
    every request must be signed with them."""

    def __init__(self, root: Path, iam: bool, tls: TestCA | None = None):
        need("moto", "moto[server]")
        self.boto3 = need("boto3", "boto3")
        self.port = free_port()
        self.log = open(root / f"moto-{self.port}.log", "wb")
        argv = [sys.executable, "-m", "moto.server", "-p", str(self.port), "-H", "127.0.0.1"]
        self.verify: str | bool = False
        if tls is None:
            self.endpoint = f"http://127.0.0.1:{self.port}"
        else:
            # https://localhost:PORT with a certificate from the test CA.
            self.endpoint = f"https://localhost:{self.port}"
            chain, key = tls.leaf("localhost")
            argv += ["-c", str(chain), "-k", str(key)]
            self.verify = str(tls.cert)
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT)
        context = None
        if tls is not None:
            import ssl
            context = ssl.create_default_context(cafile=str(tls.cert))
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=2,
                                       context=context).close()
                break
            except (urllib.error.URLError, OSError):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise AssertionError(f"moto did not answer on {self.endpoint} within 30 s")
                time.sleep(0.1)
        self.key_id, self.secret = "bootstrap", "bootstrap"
        if iam:
            try:
                self.make_user()
            except BaseException:
                self.stop()
                raise

    def make_user(self) -> None:
        """A user with every right and its keys; then every request must be
        signed with them."""
        user = unique_id("pochta")
        self.iam().create_user(UserName=user)
        self.iam().put_user_policy(UserName=user, PolicyName="all", PolicyDocument=json.dumps(
            {"Version": "2012-10-17",
             "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        key = self.iam().create_access_key(UserName=user)["AccessKey"]
        self.user, self.key_id, self.secret = user, key["AccessKeyId"], key["SecretAccessKey"]
        # From now on every request is checked (a form content type
        # would hide the body from moto).
        req = urllib.request.Request(f"{self.endpoint}/moto-api/reset-auth", data=b"0",
                                     method="POST", headers={"Content-Type": "text/plain"})
        urllib.request.urlopen(req, timeout=10).close()

    def iam(self):
        return self.boto3.client("iam", endpoint_url=self.endpoint, region_name=REGION,
                                 aws_access_key_id=self.key_id,
                                 aws_secret_access_key=self.secret)

    def s3(self):
        from botocore.config import Config
        return self.boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION,
                                 aws_access_key_id=self.key_id,
                                 aws_secret_access_key=self.secret, verify=self.verify,
                                 config=Config(s3={"addressing_style": "path"}))

    def make_bucket(self) -> str:
        # No dots: BUCKET.s3.localhost must have the bucket as one label.
        name = "pochta-" + os.urandom(8).hex()
        self.s3().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str) -> list[str]:
        pages = self.s3().get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return [o["Key"] for page in pages for o in page.get("Contents", [])]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.close()


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    service = S3Service(tmp_path_factory.mktemp("moto"), iam=False)
    yield service
    service.stop()


@pytest.fixture(scope="module")
def s3_iam(tmp_path_factory):
    service = S3Service(tmp_path_factory.mktemp("moto-iam"), iam=True)
    yield service
    service.stop()


def to_s3(box: Pochta, s3: S3Service, bucket: str, *extra: str, prefix: str = "box1",
          endpoint: str | None = None, key_id: str | None = None, secret: str | None = None,
          check: bool = True, run=None) -> subprocess.CompletedProcess:
    args = ["--endpoint", endpoint or s3.endpoint, "--region", REGION, "--bucket", bucket,
            "--prefix", prefix, "--access-key", key_id or s3.key_id, "--secret-key-stdin", *extra]
    secret = (secret if secret is not None else s3.secret) + "\n"
    return (run or box.cli)("backup to-s3", *args, input=secret, check=check)


def run_restic(s3: S3Service, repo: str, key: str, cache: Path, *args: str,
               wrap: list[str] | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, RESTIC_PASSWORD=key, RESTIC_CACHE_DIR=str(cache),
               AWS_ACCESS_KEY_ID=s3.key_id, AWS_SECRET_ACCESS_KEY=s3.secret)
    argv = [*(wrap or []), restic(), "-r", repo, "-o", f"s3.region={REGION}", *args]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, f"restic {' '.join(args)}: {res.returncode}\n{res.stdout}\n{res.stderr}"
    return res


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_backup_to_s3_is_incremental_and_restores_what_a_client_saw(server, s3, tmp_path):
    bucket = s3.make_bucket()
    res = to_s3(server, s3, bucket)
    assert f"restic -r s3:{s3.endpoint}/{bucket}/box1" in res.stdout, res.stdout
    deliver(server, ALICE, 8, size=20000)
    deliver(server, BOB, 3, size=20000)
    server.wait_messages(ALICE, 8)
    first = backup_now(server)
    assert first["created_repository"] is True
    assert first["destination"] == f"the S3 bucket {bucket} at {s3.endpoint} (prefix box1)"
    assert first["manifest"]["inventory"]["messages"] == 11
    assert first["bytes_added"] > 11 * 20000, first

    deliver(server, ALICE, 2, size=20000)
    server.wait_messages(ALICE, 10)
    second = backup_now(server)
    assert second["created_repository"] is False
    assert second["manifest"]["inventory"]["messages"] == 13
    # Incremental: two new bodies and the changed database were uploaded,
    # not the eleven old bodies again.
    assert second["bytes_added"] < first["bytes_added"] / 2, (first["bytes_added"], second["bytes_added"])
    assert second["files_new"] <= 2 + 1 + 1, second
    assert [s["id"] for s in server.cli_json("backup list")] == [first["snapshot"], second["snapshot"]]

    keys = s3.keys(bucket)
    assert "box1/config" in keys
    for folder in ("keys", "snapshots", "index"):
        assert any(k.startswith(f"box1/{folder}/") and len(k.split("/")[-1]) == 64 for k in keys), (folder, keys)
    packs = [k.split("/") for k in keys if k.startswith("box1/data/")]
    assert packs and all(len(p) == 4 and p[3].startswith(p[2]) and len(p[2]) == 2 for p in packs), packs
    assert all(k.startswith("box1/") for k in keys), keys

    assert_restore_equals_live(server, tmp_path / "restored")


def test_debian_restic_reads_checks_and_restores_the_s3_backup(server, s3, tmp_path):
    bucket = s3.make_bucket()
    to_s3(server, s3, bucket, prefix="boxes/one")
    deliver(server, ALICE, 4)
    server.wait_messages(ALICE, 4)
    report = backup_now(server)
    key = box_key(server)
    repo = f"s3:{s3.endpoint}/{bucket}/boxes/one"
    cache = tmp_path / "restic-cache"

    snaps = json.loads(run_restic(s3, repo, key, cache, "snapshots", "--json").stdout)
    assert [s["short_id"] for s in snaps] == [report["snapshot"]]
    assert snaps[0]["paths"] == ["/pochta"] and snaps[0]["tags"] == ["pochta"]
    assert "no errors were found" in run_restic(s3, repo, key, cache, "check", "--read-data").stdout
    target = tmp_path / "by-restic"
    run_restic(s3, repo, key, cache, "restore", "latest", "--target", str(target))
    ours = owned_folder(server, tmp_path / "by-pochta")
    server.cli("backup restore", report["snapshot"], "--into", str(ours), "--to", "s3")
    by_restic, by_pochta = files(target / "pochta"), files(ours)
    by_pochta.pop("backup/key")
    assert by_restic == by_pochta
    assert len([n for n in by_restic if n.startswith("blobs/")]) == 4


def test_virtual_host_addressing(server, s3, tmp_path):
    """BUCKET.s3.localhost must resolve to 127.0.0.1: glibc here does not
    resolve *.localhost, so the CLI and restic run in a mount namespace of
    their own where /etc/hosts says so (root only)."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        if os.environ.get("POCHTA_REQUIRE_TOOLS") == "1":
            pytest.fail("virtual-host addressing on loopback needs root and unshare")
        pytest.skip("virtual-host addressing on loopback needs root and unshare")
    bucket = s3.make_bucket()
    hosts = tmp_path / "hosts"
    hosts.write_text(Path("/etc/hosts").read_text() + f"\n127.0.0.1 {bucket}.s3.localhost s3.localhost\n")
    wrap = ["unshare", "-m", "sh", "-c", 'mount --bind "$0" /etc/hosts && exec "$@"', str(hosts)]

    def cli(command: str, *args: str, input: str | None = None, check: bool = True):
        argv = [*wrap, str(server.bin), *command.split(), "--data", str(server.data), *args]
        res = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=120,
                             stdin=None if input is not None else subprocess.DEVNULL)
        if check:
            assert res.returncode == 0, f"{argv}: {res.returncode}\n{res.stdout}\n{res.stderr}"
        return res

    endpoint = f"http://s3.localhost:{s3.port}"
    res = to_s3(server, s3, bucket, "--virtual-host", endpoint=endpoint, run=cli)
    assert "the bucket answers" in res.stdout, res.stdout
    deliver(server, ALICE, 3)
    server.wait_messages(ALICE, 3)
    report = only_report(json.loads(cli("backup now", "--json").stdout))
    assert report["created_repository"] is True
    key = box_key(server)
    cache = tmp_path / "restic-cache"
    # restic by virtual host, in the namespace, and by path, outside it: the
    # objects are the same, only the URL differs.
    snaps = json.loads(run_restic(s3, f"s3:{endpoint}/{bucket}/box1", key, cache, "-o",
                                  "s3.bucket-lookup=dns", "snapshots", "--json", wrap=wrap).stdout)
    assert [s["short_id"] for s in snaps] == [report["snapshot"]]
    out = run_restic(s3, f"s3:{s3.endpoint}/{bucket}/box1", key, cache, "check", "--read-data")
    assert "no errors were found" in out.stdout
    verify = only_report(json.loads(cli("backup verify", "--full", "--json").stdout))
    assert verify["problems"] == [] and verify["bodies_checked"] == 3, verify
    # Outside the namespace the bucket's host name does not resolve: an
    # error in words, not a success.
    res = server.cli("backup now", check=False)
    assert res.returncode == 2 and "backed up" not in res.stdout, res
    assert "cannot reach the S3 service" in res.stderr, res.stderr


def test_setup_refuses_wrong_keys_a_missing_bucket_and_an_unreachable_endpoint(pochta, s3_iam):
    s3 = s3_iam
    bucket = s3.make_bucket()
    cases = [
        ({"secret": "not-the-secret"}, "refused the secret key"),
        ({"key_id": "AKIAUNKNOWN000000000"}, "does not know the access key id AKIAUNKNOWN000000000"),
        ({"bucket": "no-such-bucket-here"}, "the bucket no-such-bucket-here does not exist"),
        ({"endpoint": f"http://127.0.0.1:{free_port()}"}, "cannot reach the S3 service"),
    ]
    for change, words in cases:
        res = to_s3(pochta, s3, change.pop("bucket", bucket), prefix="", check=False, **change)
        assert res.returncode == 2, (change, res.stdout, res.stderr)
        assert words in res.stderr and "nothing was saved" in res.stderr, res.stderr
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    res = pochta.cli("backup now", check=False)
    assert res.returncode == 2 and "no backup destination is set" in res.stderr, res.stderr

    res = to_s3(pochta, s3, "made-by-pochta", "--create-bucket", prefix="")
    assert "the bucket was made" in res.stdout, res.stdout
    s3.s3().head_bucket(Bucket="made-by-pochta")
    res = pochta.cli("backup to-s3", "--off")
    assert "no longer" in res.stdout, res.stdout


def test_backup_now_goes_to_every_destination_and_says_which_failed(pochta, s3, s3_iam, tmp_path):
    usb = backup_folder(pochta)
    pochta.cli("backup to", str(usb))
    bucket = s3.make_bucket()
    to_s3(pochta, s3, bucket)
    res = pochta.cli("backup now")
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"backed up to the folder {usb}"), lines
    assert lines[1].startswith(f"backed up to the S3 bucket {bucket}"), lines
    assert len(pochta.cli_json("backup list", "--to", "folder")) == 1
    assert len(pochta.cli_json("backup list", "--to", "s3")) == 1
    assert verify(pochta, "--to", "s3")["problems"] == []
    assert pochta.cli_json("backup prune", "--to", "s3")["kept"]

    # Keys the service no longer knows: the folder's backup is made, the
    # S3 one is an error that says so, and the command exits 2.
    bucket = s3_iam.make_bucket()
    user_key = s3_iam.iam().create_access_key(UserName=s3_iam.user)["AccessKey"]
    to_s3(pochta, s3_iam, bucket, prefix="", key_id=user_key["AccessKeyId"],
          secret=user_key["SecretAccessKey"])
    s3_iam.iam().delete_access_key(UserName=s3_iam.user, AccessKeyId=user_key["AccessKeyId"])
    res = pochta.cli("backup now", check=False)
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert res.stdout.startswith("backed up to the folder") and "S3 bucket" not in res.stdout, res.stdout
    assert f"does not know the access key id {user_key['AccessKeyId']}" in res.stderr, res.stderr
    assert f"1 of 2 backups failed (to the S3 bucket {bucket}" in res.stderr, res.stderr

    # S3 alone from here: each failure prints no "backed up" line at all.
    pochta.cli("backup to", "--off")
    gone = s3.make_bucket()
    to_s3(pochta, s3, gone)
    s3.s3().delete_bucket(Bucket=gone)
    res = pochta.cli("backup now", check=False)
    assert res.returncode == 2 and "backed up" not in res.stdout, (res.stdout, res.stderr)
    assert f"the bucket {gone} does not exist" in res.stderr, res.stderr

    # A service that has stopped answering (a closed port).
    other = S3Service(tmp_path, iam=False)
    try:
        to_s3(pochta, other, other.make_bucket())
    finally:
        other.stop()
    res = pochta.cli("backup now", check=False)
    assert res.returncode == 2 and "backed up" not in res.stdout, (res.stdout, res.stderr)
    assert f"cannot reach the S3 service at {other.endpoint}" in res.stderr, res.stderr
    assert "Connection refused" in res.stderr, res.stderr


def test_an_https_endpoint_is_verified_against_the_systems_certificates(pochta, tmp_path, monkeypatch):
    """The client is rustls (on ring) with the system's CA certificates: a
    private CA named by SSL_CERT_FILE is trusted, and without it the
    service's certificate is refused, in words."""
    ca = TestCA(tmp_path / "ca")
    traversable(ca.root)
    os.chmod(ca.cert, 0o644)
    service = S3Service(tmp_path, iam=False, tls=ca)
    try:
        bucket = service.make_bucket()
        res = to_s3(pochta, service, bucket, check=False)
        assert res.returncode == 2 and "nothing was saved" in res.stderr, res
        assert "showed a TLS certificate this box does not trust" in res.stderr, res.stderr
        assert "UnknownIssuer" in res.stderr, res.stderr
        monkeypatch.setenv("SSL_CERT_FILE", str(ca.cert))
        to_s3(pochta, service, bucket)
        report = backup_now(pochta)
        assert report["destination"].startswith(f"the S3 bucket {bucket} at https://localhost:")
        assert "box1/config" in service.keys(bucket)
    finally:
        service.stop()
