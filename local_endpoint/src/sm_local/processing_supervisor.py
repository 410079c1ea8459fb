"""One processing job of the local endpoint, from start to end: `python -m sm_local.processing_supervisor JOBDIR`.

It does what SageMaker does around processing containers: for each of the job's InstanceCount hosts it stages a
stand-in for `/opt/ml` (`JOBDIR/hosts/algo-<i>/opt_ml`, `sm_local.processing_spec`) with the host's share of every
S3 input and `config/resourceconfig.json`, runs the container command of every host side by side, tees each
host's output to `logs/algo-<i>.log` and CloudWatch Logs (`/aws/sagemaker/ProcessingJobs`, stream
`<job>/algo-<i>-<epoch>`), uploads the outputs (`Continuous` ones while the containers run, `EndOfJob` ones when
all succeeded), and publishes every change in `status.json` (DescribeProcessingJob's live fields).

The server sets `StopRequested` in job.json and SIGTERMs this process's group on StopProcessingJob; containers run
in sessions of their own, so they are stopped here (every host's), never left behind.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

# A StopProcessingJob can arrive while botocore is still importing: remember it instead of dying of the default
# SIGTERM action, which would read as a crash.
_EARLY_STOP_SIGNALS: list[int] = []
if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda signum, _frame: _EARLY_STOP_SIGNALS.append(signum))

from sm_explain_contracts import safe_keys  # noqa: E402
from sm_explain_contracts.envelope import write_json_atomic  # noqa: E402
from sm_local import cwlogs, s3io, warm_container  # noqa: E402
from sm_local.job_status import ProcessingStatus, truncate  # noqa: E402
from sm_local.process import JOB_DIR_ENV  # noqa: E402
from sm_local.processing_spec import (  # noqa: E402
    DEFAULT_MAX_RUNTIME_SECONDS,
    DEFAULT_VOLUME_SIZE_GB,
    OPT_ML_ENV,
    PROCESSING_ROOT_ENV,
    RESERVED_ENV_PREFIX,
    ContainerCommandError,
    HostLayout,
    container_command,
    host_layouts,
    inputs,
    outputs,
    runtime_image_problem,
    shard,
)
from sm_local.store import JOB_FILE, STATUS_FILE, read_json  # noqa: E402
from sm_local.supervision import (  # noqa: E402
    Child,
    HostLog,
    JobFailure,
    StopRequested,
    StopWatch,
    supervisor_main,
    terminate,
)

POLL_SECONDS = 0.1
CONTINUOUS_UPLOAD_SECONDS = 2.0  # Continuous outputs: a pass this often while the containers run, then a last one
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
STDERR_TAIL_LINES = 20

logger = logging.getLogger("sm_local.processing_supervisor")


class MaxRuntimeExceeded(Exception):
    """The containers ran longer than StoppingCondition.MaxRuntimeInSeconds."""


class ContainerFailed(JobFailure):
    """A container exited with a code other than 0; `exit_message` is its termination message, if it wrote one."""

    def __init__(self, reason: str, exit_message: str | None) -> None:
        super().__init__(reason)
        self.exit_message = exit_message


@dataclass
class WarmContainer:
    """A runtime-image container waiting for its command (`sm_local.warm_container`) and the environment it
    started with."""

    process: subprocess.Popen[bytes]
    env: dict[str, str]

    def end(self) -> None:
        """EOF on its stdin ends it; a kill if it lingers."""
        try:
            if self.process.stdin is not None:
                self.process.stdin.close()
        except OSError:
            pass
        try:
            self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


_spare_container: list[WarmContainer] = []  # a spare supervisor's warm container, until its job takes it


def start_warm_container() -> None:
    """In a spare supervisor (on its main thread, so the container's parent-death signal follows the process): the
    warm container its job's first host will get when `warm_container.eligible`."""
    env = container_base_env(os.environ)
    env[JOB_DIR_ENV] = os.environ.get(JOB_DIR_ENV, "")  # the spare's marker: sweeps find it as they find the spare
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "sm_local.warm_container"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
    except OSError:
        logger.exception("no warm container: its jobs start cold")
        return
    _spare_container.append(WarmContainer(process, env))


@dataclass
class ContainerRun:
    host: HostLayout
    child: Child
    log: HostLog
    readers: list[threading.Thread] = field(default_factory=list)
    stderr_tail: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=STDERR_TAIL_LINES))


class ProcessingJobSupervisor:
    """Runs the job described by `<job_dir>/job.json` and keeps `<job_dir>/status.json` current."""

    def __init__(self, job_dir: Path) -> None:
        self.job_dir = job_dir
        job = read_json(job_dir / JOB_FILE)
        if job is None:
            raise FileNotFoundError(f"{job_dir / JOB_FILE} does not exist: not a processing job directory")
        self.job: dict[str, Any] = job
        self.name: str = job["ProcessingJobName"]
        self.region: str = job.get("Region") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        self.created = float(job.get("CreationTime") or time.time())
        self.status = ProcessingStatus(job_dir / STATUS_FILE, self.created)
        self.stop = StopWatch(job_dir / JOB_FILE)
        cluster = job["ProcessingResources"]["ClusterConfig"]
        self.cluster = cluster
        self.hosts = host_layouts(job_dir, int(cluster.get("InstanceCount") or 1))
        # The runtime image's "container": the interpreter this supervisor runs in (the endpoint's own).
        self.runtime_python = sys.executable
        self.runs: list[ContainerRun] = []
        self._terminated = False
        self._s3: Any = None
        self._syncs: list[tuple[str, s3io.DirectorySync]] = []  # (S3UploadMode, sync) per host and output
        self._periodic: list[s3io.PeriodicSync] = []
        self._warm: WarmContainer | None = _spare_container.pop() if _spare_container else None

    # ---------------------------------------------------------------- entry point

    def request_stop(self, signum: int = signal.SIGTERM, frame: Any = None) -> None:
        self.stop.on_signal(signum, frame)

    def run(self) -> int:
        """The whole job; returns the process exit code (0 whenever status.json tells the outcome)."""
        self.status.update()
        final, reason, message = "Failed", None, None
        try:
            try:
                self.stop.check()
                commands = self._prepare()
                self.status.update(ProcessingStartTime=time.time())
                self._download()
                self._run_containers(commands)
                self._upload_end_of_job()
                final, message = "Completed", self._exit_message(self.hosts[0])
            except StopRequested:
                self.status.update(ProcessingJobStatus="Stopping")
                self._end_containers()
                final = "Stopped"
            except MaxRuntimeExceeded:
                # SageMaker stops a processing job that reaches its StoppingCondition: Stopped, with no
                # FailureReason (the API reference: "After the condition is met, the processing job is stopped").
                self.status.update(ProcessingJobStatus="Stopping")
                logger.warning("the job reached StoppingCondition.MaxRuntimeInSeconds (%g s): stopping it",
                               self._max_runtime())
                self._end_containers()
                final = "Stopped"
            except ContainerFailed as failure:
                reason, message = str(failure), failure.exit_message
            except JobFailure as failure:
                self._end_containers()
                reason = str(failure)
        except Exception as error:  # noqa: BLE001 - never hang, never die without a status
            logger.exception("processing supervisor failed")
            final, message = "Failed", None
            reason = f"InternalServerError: the local processing supervisor failed: {type(error).__name__}: {error}"
        finally:
            self._terminate_all()
            if self._warm is not None:
                self._warm.end()
                self._warm = None
            for periodic in self._periodic:
                periodic.stop()
            # The logs are in CloudWatch before the job reads ended, as whoever waits on it expects.
            for run in self.runs:
                run.log.close()
            self.status.finish(final, failure_reason=reason, exit_message=message)
        return 0

    # ---------------------------------------------------------------- phases

    def _prepare(self) -> list[list[str]]:
        """The container command of every host, or JobFailure: an image it cannot run fails the job as an image
        SageMaker cannot pull does, before anything is downloaded."""
        app = self.job["AppSpecification"]
        problem = runtime_image_problem(app["ImageUri"], self.job.get("RuntimeImageUri") or "")
        if problem is not None:
            raise JobFailure(problem)
        try:
            return [container_command(app, host, self.runtime_python) for host in self.hosts]
        except ContainerCommandError as error:
            raise JobFailure(str(error)) from error

    def _max_runtime(self) -> float:
        condition = self.job.get("StoppingCondition") or {}
        return float(condition.get("MaxRuntimeInSeconds") or DEFAULT_MAX_RUNTIME_SECONDS)

    def _download(self) -> None:
        """Every host's share of every input, planned (keys mapped to safe paths, volume checked) for all hosts
        before the first object is written; then the output directories and their uploads."""
        self._s3 = s3io.aws_client("s3", self.region)
        hostnames = [host.name for host in self.hosts]
        for host in self.hosts:
            host.processing.mkdir(parents=True, exist_ok=True)
            (host.opt_ml / "output").mkdir(parents=True, exist_ok=True)
            write_json_atomic(host.config_dir / "resourceconfig.json", {
                "current_host": host.name,
                "current_instance_type": self.cluster.get("InstanceType", "local"),
                "current_group_name": "homogeneousCluster",
                "hosts": hostnames,
                "instance_groups": [{"instance_group_name": "homogeneousCluster",
                                     "instance_type": self.cluster.get("InstanceType", "local"),
                                     "hosts": hostnames}],
                "network_interface_name": "eth0",
            })
        volume_gb = int(self.cluster.get("VolumeSizeInGB") or DEFAULT_VOLUME_SIZE_GB)
        plans: list[tuple[str, dict[str, Path]]] = []  # (bucket, key -> path) per host and input
        used = {host.name: 0 for host in self.hosts}
        for input_name, source in inputs(self.job):
            bucket, prefix, sizes = self._input_objects(input_name, source)
            for host in self.hosts:
                keys = shard(list(sizes), host.index, len(self.hosts), source.get("S3DataDistributionType", ""))
                destination = host.local_dir(source["LocalPath"])
                destination.mkdir(parents=True, exist_ok=True)
                try:
                    targets = s3io.local_targets(keys, prefix, destination)
                except safe_keys.UnsafeKeyError as error:
                    raise JobFailure(
                        f'ClientError: Cannot download input "{input_name}" from "{source["S3Uri"]}": {error}; '
                        f"SageMaker copies each object to {source['LocalPath']}/<the key after the prefix>, which "
                        "must stay inside that directory."
                    ) from error
                used[host.name] += sum(sizes[key] for key in keys)
                if used[host.name] > volume_gb * 1024**3:
                    raise JobFailure(
                        f'ClientError: Cannot download input "{input_name}" to {host.name}: its inputs hold '
                        f"{used[host.name]} bytes, more than its ML storage volume of {volume_gb} GB "
                        "(ProcessingResources.ClusterConfig.VolumeSizeInGB). Give the job a larger volume or less data."
                    )
                plans.append((bucket, targets))
            logger.info("input %s: %d objects from %s", input_name, len(sizes), source["S3Uri"])
        for bucket, targets in plans:
            s3io.download_objects(self._s3, bucket, targets, self.stop.check)
        self.stop.check()
        for output_name, target in outputs(self.job):
            for host in self.hosts:
                local = host.local_dir(target["LocalPath"])
                local.mkdir(parents=True, exist_ok=True)
                sync = s3io.DirectorySync(self._s3, local, target["S3Uri"], skip_suffixes=())
                self._syncs.append((target["S3UploadMode"], sync))
                if target["S3UploadMode"] == "Continuous":
                    periodic = s3io.PeriodicSync(
                        sync, CONTINUOUS_UPLOAD_SECONDS,
                        lambda error, name=output_name: logger.warning("output %s upload: %s", name, error),
                        name=f"upload-{output_name}-{host.name}",
                    )
                    self._periodic.append(periodic)

    def _input_objects(self, input_name: str, source: dict[str, Any]) -> tuple[str, str, dict[str, int]]:
        """(bucket, key prefix, {key: size}) of the objects an input names: every object under its S3Uri
        (S3Prefix), or the keys its manifest lists (ManifestFile), which must exist."""
        uri = source["S3Uri"]
        try:
            if source["S3DataType"] == "ManifestFile":
                prefix_uri, entries = self._read_manifest(input_name, uri)
                bucket, prefix, sizes = s3io.list_objects(self._s3, prefix_uri)
                keys = [prefix + entry for entry in entries]
                missing = [key for key in keys if key not in sizes]
                if missing:
                    raise JobFailure(
                        f'ClientError: The manifest "{uri}" of input "{input_name}" lists {len(missing)} object(s) '
                        f"that do not exist, the first s3://{bucket}/{missing[0]}."
                    )
                return bucket, prefix, {key: sizes[key] for key in keys}
            return s3io.list_objects(self._s3, uri)
        except s3io.NoObjectsFoundError as error:
            bucket, _ = s3io.parse_s3_uri(uri)
            raise JobFailure(
                f'ClientError: No S3 objects found under S3 URL "{uri}" given in input "{input_name}" ({error}). '
                f'Please ensure that the bucket "{bucket}" exists in the selected region ({self.region}) and that '
                "objects exist under that S3 prefix."
            ) from error

    def _read_manifest(self, input_name: str, uri: str) -> tuple[str, list[str]]:
        """(prefix URI, relative keys) of a SageMaker manifest `[{"prefix": "s3://..."}, "key", ...]`."""
        from botocore.exceptions import ClientError

        bucket, key = s3io.parse_s3_uri(uri)
        where = f'The manifest "{uri}" of input "{input_name}"'
        try:
            body = self._s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{MAX_MANIFEST_BYTES}")["Body"].read()
        except ClientError as error:
            raise JobFailure(f"ClientError: {where} cannot be read: {error}") from error
        if len(body) > MAX_MANIFEST_BYTES:
            raise JobFailure(f"ClientError: {where} is larger than {MAX_MANIFEST_BYTES} bytes.")
        try:
            manifest = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise JobFailure(f"ClientError: {where} is not JSON: {error}") from error
        if (
            not isinstance(manifest, list)
            or not manifest
            or not isinstance(manifest[0], dict)
            or not isinstance(manifest[0].get("prefix"), str)
            or not all(isinstance(entry, str) and entry for entry in manifest[1:])
        ):
            raise JobFailure(
                f'ClientError: {where} is not a SageMaker manifest: a JSON list whose first element is '
                '{"prefix": "s3://<bucket>/<prefix>"} and whose other elements are keys relative to that prefix.'
            )
        try:
            s3io.parse_s3_uri(manifest[0]["prefix"])
        except s3io.S3UriError as error:
            raise JobFailure(f"ClientError: {where} has an unusable prefix: {error}") from error
        return manifest[0]["prefix"], list(dict.fromkeys(manifest[1:]))

    def _run_containers(self, commands: list[list[str]]) -> None:
        """Start every host's container, wait until all exit 0; the first that fails ends the job (the others are
        stopped), as a failed instance fails a SageMaker processing job."""
        started = time.time()
        for host, command in zip(self.hosts, commands, strict=True):
            log = HostLog(
                self.job_dir / "logs" / f"{host.name}.log",
                lambda: s3io.aws_client("logs", self.region),
                cwlogs.log_stream_name(self.name, started, host.name),
                cwlogs.PROCESSING_LOG_GROUP,
            )
            env = self._container_env(host)
            try:
                process = self._hand_to_warm(command, env, host) or subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    env=env,
                    cwd=host.root,
                    start_new_session=True,
                )
            except OSError as error:
                log.close()
                raise JobFailure(f"ClientError: Cannot start the container of {host.name}: {error}") from error
            run = ContainerRun(host, Child(f"container {host.name}", process), log)
            self.runs.append(run)
            for stream, is_stderr in ((process.stdout, False), (process.stderr, True)):
                reader = threading.Thread(target=self._tee, args=(run, stream, is_stderr),
                                          name=f"tee-{host.name}-{'err' if is_stderr else 'out'}", daemon=True)
                reader.start()
                run.readers.append(reader)
        for periodic in self._periodic:
            periodic.start()
        max_runtime = self._max_runtime()
        while True:
            self.stop.check()
            codes = [run.child.process.poll() for run in self.runs]
            failed = next((run for run, code in zip(self.runs, codes, strict=True) if code not in (None, 0)), None)
            if failed is not None:
                self.stop.check()  # killed because of a stop: that is Stopped, not a container error
                self._end_containers()
                raise self._container_failure(failed)
            if all(code == 0 for code in codes):
                break
            if time.time() - started > max_runtime:
                raise MaxRuntimeExceeded
            time.sleep(POLL_SECONDS)
        self._finish_output()
        self._final_continuous_upload(best_effort=False)

    def _hand_to_warm(self, command: list[str], env: dict[str, str], host: HostLayout) -> subprocess.Popen[bytes] | None:
        """The warm container, now running `command`, when it can run it as a cold one would; else None (and it
        ends). At most one host gets it: the others start cold."""
        warm, self._warm = self._warm, None
        if warm is None:
            return None
        if warm.process.poll() is None and warm_container.eligible(command, self.runtime_python, warm.env, env):
            assert warm.process.stdin is not None
            try:
                warm.process.stdin.write(warm_container.job_line(command, env, str(host.root)))
                warm.process.stdin.close()
                return warm.process
            except OSError:
                pass
        warm.end()
        return None

    def _container_env(self, host: HostLayout) -> dict[str, str]:
        """The endpoint's environment (AWS variables included, so the container reaches the local S3 and
        CloudWatch), without the endpoint's own settings; the request's Environment with /opt/ml rewritten; the
        job marker and where the stand-ins for /opt/ml and /opt/ml/processing are."""
        env = container_base_env(os.environ)
        env.setdefault("AWS_REGION", self.region)
        env.setdefault("AWS_DEFAULT_REGION", self.region)
        env.update({key: host.rewrite(value) for key, value in (self.job.get("Environment") or {}).items()})
        env[JOB_DIR_ENV] = str(self.job_dir)  # every process of the job carries it (sm_local.process)
        env[PROCESSING_ROOT_ENV] = str(host.processing)
        env[OPT_ML_ENV] = str(host.opt_ml)
        return env

    def _tee(self, run: ContainerRun, stream: IO[bytes], is_stderr: bool) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            run.log.line(line)
            if is_stderr and line.strip():
                run.stderr_tail.append(line)
        stream.close()

    def _finish_output(self) -> None:
        for run in self.runs:
            for reader in run.readers:
                reader.join(timeout=5)

    def _container_failure(self, run: ContainerRun) -> ContainerFailed:
        code = run.child.process.returncode
        message = self._exit_message(run.host)
        detail = message or "\n".join(run.stderr_tail).strip() or "See job logs for more information"
        return ContainerFailed(truncate(f"AlgorithmError: {detail} (host {run.host.name}, exit code {code})"), message)

    @staticmethod
    def _exit_message(host: HostLayout) -> str | None:
        """The container's termination message (/opt/ml/output/message), at most 1 KiB of it as SageMaker keeps."""
        try:
            with host.message_file.open("rb") as handle:
                text = handle.read(4096).decode("utf-8", errors="replace").strip()
        except (FileNotFoundError, IsADirectoryError):
            return None
        return truncate(text) if text else None

    def _final_continuous_upload(self, *, best_effort: bool) -> None:
        for periodic in self._periodic:
            periodic.stop()
        for mode, sync in self._syncs:
            if mode != "Continuous":
                continue
            try:
                sync.sync()
            except Exception as error:
                if best_effort:
                    logger.exception("output upload after the end failed")
                    continue
                raise JobFailure(f"ClientError: uploading the output to {sync.uri} failed: {error}") from error

    def _upload_end_of_job(self) -> None:
        """EndOfJob outputs, once every container succeeded; the outputs of all hosts go to the same S3 prefix."""
        for mode, sync in self._syncs:
            if mode != "EndOfJob":
                continue
            self.stop.check()
            try:
                uploaded = sync.sync()
            except Exception as error:
                raise JobFailure(f"ClientError: uploading the output to {sync.uri} failed: {error}") from error
            logger.info("uploaded %d file(s) of %s to %s", len(uploaded), sync.local_dir, sync.uri)

    def _end_containers(self) -> None:
        """Stop every container still running, then the last pass of the Continuous outputs (best effort: the job
        ends Failed or Stopped anyway). A stop reads Stopping meanwhile, then Stopped; what Continuous outputs wrote
        by then is uploaded."""
        self._terminate_all()
        self._finish_output()
        self._final_continuous_upload(best_effort=True)

    def _terminate_all(self) -> None:
        """Once: a reaped container's pid (its group id) may belong to another process later."""
        if not self._terminated:
            self._terminated = True
            terminate([run.child for run in self.runs])


def container_base_env(environ: dict[str, str] | os._Environ[str]) -> dict[str, str]:
    """What every container of the runtime image starts from: the endpoint's environment without its own settings,
    unbuffered output (its lines reach the log as they are printed)."""
    env = {key: value for key, value in environ.items() if not key.startswith(RESERVED_ENV_PREFIX)}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def main(argv: list[str] | None = None) -> int:
    return supervisor_main("sm_local.processing_supervisor", ProcessingJobSupervisor, _EARLY_STOP_SIGNALS, argv,
                           on_spare=start_warm_container)


if __name__ == "__main__":
    sys.exit(main())
