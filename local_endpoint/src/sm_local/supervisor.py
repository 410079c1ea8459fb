"""One training job of the local endpoint, from start to its last rule: `python -m sm_local.supervisor JOBDIR`.

It does what SageMaker's control plane does around a training container: stages `/opt/ml` (here
`JOBDIR/opt_ml`) and the channels' S3 data, runs the algorithm process and one process per Debugger
rule side by side, tees the job log to `logs/algo-1.log` and CloudWatch Logs, mirrors the Debugger
tensors to S3 while training, uploads `model.tar.gz`, and publishes every change in `status.json`
(`sm_local.job_status`). Contracts with the algorithm and rule processes: docs/architecture.md.

The server sets `StopRequested` in job.json and SIGTERMs this process's group on StopTrainingJob;
children run in sessions of their own, so they are stopped here, never left behind.
"""

from __future__ import annotations

import collections
import logging
import os
import re
import signal
import subprocess
import sys
import tarfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

# A StopTrainingJob can arrive while botocore is still importing (about a second on a busy machine):
# remember it instead of dying of the default SIGTERM action, which would read as a crash.
_EARLY_STOP_SIGNALS: list[int] = []
if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda signum, _frame: _EARLY_STOP_SIGNALS.append(signum))

from sm_explain_contracts import safe_keys  # noqa: E402
from sm_explain_contracts.envelope import write_json_atomic  # noqa: E402
from sm_local import code_path, cwlogs, image_envs, s3io  # noqa: E402
from sm_local.images import parse_algorithm_image  # noqa: E402
from sm_local.job_status import (  # noqa: E402
    PULLING_IMAGE_MESSAGE,
    RULE_RESULT_STATUSES,
    STATUS_MESSAGES,
    JobStatus,
    truncate,
)
from sm_local.store import (  # noqa: E402
    JOB_FILE,
    STATUS_FILE,
    read_json,
    rule_dir_name,
    rule_evaluation_job_arn,
    rule_evaluation_job_name,
)
from sm_local.supervision import (  # noqa: E402
    Child,
    HostLog,
    JobFailure,
    StopRequested,
    StopWatch,
    supervisor_main,
    terminate,
)

ALGORITHM_MODULE_ENV = "SM_LOCAL_ALGORITHM_MODULE"
RULES_MODULE_ENV = "SM_LOCAL_RULES_MODULE"
RULE_TIMEOUT_ENV = "SM_LOCAL_RULE_TIMEOUT_SECONDS"  # how long rules may run after training ended
DEFAULT_ALGORITHM_MODULE = "sm_local.xgboost_container"
DEFAULT_RULES_MODULE = "sm_local.rules"
DEFAULT_RULE_TIMEOUT_SECONDS = 3600.0
DEFAULT_MAX_RUNTIME_SECONDS = 86_400  # SageMaker's default StoppingCondition
DEFAULT_VOLUME_SIZE_GB = 30  # what a request without VolumeSizeInGB gets

POLL_SECONDS = 0.1
TENSOR_SYNC_SECONDS = 2.0
END_OF_TRAINING_MARKER = "training_job_end.ts"
MODEL_FILE = "model.tar.gz"
HOST = "algo-1"

logger = logging.getLogger("sm_local.supervisor")

# `[12]\ttrain-logloss:0.41\tvalidation-logloss:0.43`; the tab arrives as `#011` through syslog.
_ROUND_LINE = re.compile(r"\[(\d+)\](?:\t|#011)(.*)")
_FIELD_SEPARATOR = re.compile(r"\t|#011")


def parse_metric_line(line: str) -> list[tuple[str, float]] | None:
    """The `(<eval>:<metric>, value)` pairs of an XGBoost per-round line, or None for other lines."""
    match = _ROUND_LINE.search(line.rstrip("\r\n"))
    if match is None:
        return None
    metrics = []
    for item in _FIELD_SEPARATOR.split(match.group(2)):
        name, colon, value = item.strip().rpartition(":")
        dataset, dash, metric = name.partition("-")
        if not colon or not dash or not dataset or not metric:
            continue
        try:
            metrics.append((f"{dataset}:{metric}", float(value)))
        except ValueError:
            continue
    return metrics or None


class MaxRuntimeExceeded(Exception):
    """Training ran longer than StoppingCondition.MaxRuntimeInSeconds."""


@dataclass
class RuleRun:
    name: str
    child: Child
    result_path: Path
    stderr_path: Path
    log: HostLog | None = None  # the rule job's log: `<rule dir>/logs/algo-1.log` and its CloudWatch stream
    readers: list[threading.Thread] = field(default_factory=list)

    def finish_log(self, timeout: float = 5.0) -> None:
        """The rule process's last lines in its log and CloudWatch, before its status says it ended (a wait that
        reads the log when the status is final then finds them all)."""
        for reader in self.readers:
            reader.join(timeout)
        if self.log is not None:
            self.log.close()


@dataclass
class AlgorithmRun:
    child: Child
    readers: list[threading.Thread]
    stderr_tail: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=20))
    last_metrics: tuple[float, list[tuple[str, float]]] | None = None


def _lower_priority() -> None:
    """Run in a rule's child process before exec: a nicer CPU priority than the training."""
    os.nice(10)


def _child_env(job_dir: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    paths = code_path.child_pythonpath(job_dir) + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


class TrainingJobSupervisor:
    """Runs the job described by `<job_dir>/job.json` and keeps `<job_dir>/status.json` current."""

    def __init__(self, job_dir: Path) -> None:
        self.job_dir = job_dir
        job = read_json(job_dir / JOB_FILE)
        if job is None:
            raise FileNotFoundError(f"{job_dir / JOB_FILE} does not exist: not a training job directory")
        self.job: dict[str, Any] = job
        self.name: str = job["TrainingJobName"]
        self.region = self._region(job)
        self.opt_ml = job_dir / "opt_ml"
        self.tensors_dir = self.opt_ml / "output" / "tensors"
        self.rules_config: list[dict[str, Any]] = list(job.get("DebugRuleConfigurations") or [])
        self.created = float(job.get("CreationTime") or time.time())
        self.status = JobStatus(
            job_dir / STATUS_FILE,
            {
                rule["RuleConfigurationName"]: rule_evaluation_job_arn(
                    self.region, self.name, rule["RuleConfigurationName"]
                )
                for rule in self.rules_config
            },
            created=self.created,
        )
        self.algorithm: AlgorithmRun | None = None
        self.rules: dict[str, RuleRun] = {}
        self.children: list[Child] = []
        self.training_started_at: float | None = None
        self.training_ended_at: float | None = None
        self._stop = StopWatch(job_dir / JOB_FILE)
        self._s3: Any = None
        self._log: HostLog | None = None
        self._tensor_sync: s3io.DirectorySync | None = None
        self._periodic_sync: s3io.PeriodicSync | None = None

    # ---------------------------------------------------------------- entry point

    def request_stop(self, signum: int = signal.SIGTERM, frame: Any = None) -> None:
        """Signal handler: only sets a flag; the loops act on it at their next check."""
        self._stop.on_signal(signum, frame)

    def run(self) -> int:
        """The whole job; returns the process exit code (0 whenever status.json tells the outcome)."""
        self.status.transition("Starting", at=min(self.created, time.time()))
        try:
            try:
                self._check_stop()
                image = self._validate()
                self._download()
                self._train(image.version)
            except StopRequested:
                self._stop_job("Stopped")
            except MaxRuntimeExceeded:
                self._stop_job("MaxRuntimeExceeded")
            except JobFailure as failure:
                self._fail(str(failure))
            self._await_rules()
        except Exception as error:  # noqa: BLE001 - never hang, never die without a status
            logger.exception("supervisor failed")
            self._fail_internal(error)
        finally:
            self._terminate(self.children)
            self._close_logs()
        return 0

    # ---------------------------------------------------------------- phases

    def _validate(self) -> Any:
        """Reject what the local endpoint cannot run before anything expensive starts."""
        spec = self.job.get("AlgorithmSpecification") or {}
        try:
            image = parse_algorithm_image(spec.get("TrainingImage", ""))
        except ValueError as error:
            raise JobFailure(f"ClientError: {error}") from error
        for channel in self.job.get("InputDataConfig") or []:
            source = channel.get("DataSource", {}).get("S3DataSource")
            name = channel.get("ChannelName")
            if source is None:
                raise JobFailure(
                    f"ClientError: channel {name!r} has no S3DataSource; the local endpoint reads S3 data only."
                )
            if source.get("S3DataType", "S3Prefix") != "S3Prefix":
                raise JobFailure(
                    f"ClientError: channel {name!r} uses S3DataType {source['S3DataType']!r}; the local "
                    "endpoint supports only 'S3Prefix' (every object under the S3Uri prefix)."
                )
            try:
                s3io.parse_s3_uri(source.get("S3Uri", ""))
            except s3io.S3UriError as error:
                raise JobFailure(f"ClientError: channel {name!r}: {error}") from error
        return image

    def _download(self) -> None:
        """Stage /opt/ml like SageMaker does, then fetch every channel."""
        self.status.transition("Downloading")
        self.status.update(TrainingStartTime=self.status.data["LastModifiedTime"])
        self._write_opt_ml_config()
        self._s3 = s3io.aws_client("s3", self.region)
        # File mode copies every channel to the instance's ML storage volume: what does not fit fails the job.
        volume_gb = int((self.job.get("ResourceConfig") or {}).get("VolumeSizeInGB") or DEFAULT_VOLUME_SIZE_GB)
        left = volume_gb * 1024**3
        for channel in self.job.get("InputDataConfig") or []:
            name = channel["ChannelName"]
            uri = channel["DataSource"]["S3DataSource"]["S3Uri"]
            try:
                count, size = s3io.download_prefix(
                    self._s3, uri, self.opt_ml / "input" / "data" / name, self._check_stop, max_bytes=left
                )
                left -= size
            except s3io.NoObjectsFoundError as error:
                bucket, _ = s3io.parse_s3_uri(uri)
                raise JobFailure(
                    f'ClientError: No S3 objects found under S3 URL "{uri}" given in input data source '
                    f'for channel "{name}" ({error}). Please ensure that the bucket "{bucket}" exists in '
                    f"the selected region ({self.region}) and that objects exist under that S3 prefix."
                ) from error
            except s3io.VolumeTooSmallError as error:
                raise JobFailure(
                    f'ClientError: Cannot download channel "{name}" from "{uri}": {error} '
                    f"(ResourceConfig.VolumeSizeInGB={volume_gb}). Give the job a larger volume or less data."
                ) from error
            except safe_keys.UnsafeKeyError as error:
                raise JobFailure(
                    f'ClientError: Cannot download channel "{name}" from "{uri}": {error}; SageMaker copies '
                    f"each object to /opt/ml/input/data/{name}/<the key after the prefix>, which must stay "
                    "inside that directory."
                ) from error
            logger.info("channel %s: %d objects from %s", name, count, uri)

    def _write_opt_ml_config(self) -> None:
        config = self.opt_ml / "input" / "config"
        (self.opt_ml / "model").mkdir(parents=True, exist_ok=True)
        (self.opt_ml / "output").mkdir(parents=True, exist_ok=True)
        write_json_atomic(config / "hyperparameters.json", dict(self.job.get("HyperParameters") or {}))
        default_mode = (self.job.get("AlgorithmSpecification") or {}).get("TrainingInputMode", "File")
        channels = {}
        for channel in self.job.get("InputDataConfig") or []:
            source = channel["DataSource"]["S3DataSource"]
            entry = {
                "TrainingInputMode": channel.get("InputMode") or default_mode,
                "S3DistributionType": source.get("S3DataDistributionType", "FullyReplicated"),
                "RecordWrapperType": channel.get("RecordWrapperType", "None"),
            }
            for key in ("ContentType", "CompressionType"):
                if channel.get(key):
                    entry[key] = channel[key]
            channels[channel["ChannelName"]] = entry
        write_json_atomic(config / "inputdataconfig.json", channels)
        resources = self.job.get("ResourceConfig") or {}
        write_json_atomic(
            config / "resourceconfig.json",
            {
                "current_host": HOST,
                "hosts": [HOST],
                "current_instance_type": resources.get("InstanceType", "local"),
                "network_interface_name": "eth0",
            },
        )
        hook = self.job.get("DebugHookConfig")
        if hook is not None:
            write_json_atomic(config / "debughookconfig.json", {**hook, "LocalPath": str(self.tensors_dir)})
        if hook is not None or self.rules_config:
            # Rules read this directory; it must exist even when the image writes no tensors.
            self.tensors_dir.mkdir(parents=True, exist_ok=True)

    def _train(self, framework_version: str) -> None:
        self._check_stop()
        self.status.transition("Training", message=PULLING_IMAGE_MESSAGE)
        self._start_log(time.time())
        python = self._pull_image(framework_version)
        self.status.set_message(STATUS_MESSAGES["Training"])
        started = time.time()
        self.training_started_at = started
        hook = self.job.get("DebugHookConfig")
        extra_env = {}
        if hook is not None:
            extra_env["SMDEBUG_CONFIG_FILE_PATH"] = str(
                self.opt_ml / "input" / "config" / "debughookconfig.json"
            )
        module = os.environ.get(ALGORITHM_MODULE_ENV) or DEFAULT_ALGORITHM_MODULE
        process = subprocess.Popen(
            [
                python,
                "-m",
                module,
                "--opt-ml",
                str(self.opt_ml),
                "--framework-version",
                framework_version,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_child_env(self.job_dir, extra_env),
            cwd=self.job_dir,
            start_new_session=True,
        )
        child = Child("algorithm", process)
        self.children.append(child)
        self.algorithm = AlgorithmRun(child=child, readers=[])
        for stream, is_stderr in ((process.stdout, False), (process.stderr, True)):
            reader = threading.Thread(
                target=self._tee,
                args=(stream, is_stderr),
                name=f"tee-{'err' if is_stderr else 'out'}",
                daemon=True,
            )
            reader.start()
            self.algorithm.readers.append(reader)
        self._start_rules()
        if hook is not None and hook.get("S3OutputPath"):
            self._tensor_sync = s3io.DirectorySync(
                self._s3, self.tensors_dir, s3io.join_s3_uri(hook["S3OutputPath"], self.name, "debug-output")
            )
            self._periodic_sync = s3io.PeriodicSync(
                self._tensor_sync, TENSOR_SYNC_SECONDS, lambda error: logger.warning("tensor sync: %s", error)
            )
            self._periodic_sync.start()

        max_runtime = float(
            (self.job.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds")
            or DEFAULT_MAX_RUNTIME_SECONDS
        )
        while process.poll() is None:
            self._check_stop()
            self._poll_rules()
            if time.time() - started > max_runtime:
                raise MaxRuntimeExceeded
            time.sleep(POLL_SECONDS)
        self.training_ended_at = time.time()
        logger.info("algorithm exited with code %d", process.returncode)
        self._finish_algorithm_output()
        logger.info("algorithm output complete (log, end marker, tensors in S3)")
        if process.returncode != 0:
            self._check_stop()  # killed because of a stop: that is Stopped, not an algorithm error
            raise JobFailure(self._algorithm_failure_reason(process.returncode))
        self._check_stop()
        self._upload_model_and_complete()

    def _pull_image(self, framework_version: str) -> str:
        """The python of the image's environment, built first when it is not cached: the image pull.

        A scripted stand-in for the algorithm (`SM_LOCAL_ALGORITHM_MODULE`, the endpoint's own tests) is no
        image and runs in this environment.
        """
        if os.environ.get(ALGORITHM_MODULE_ENV):
            return sys.executable
        try:
            environment = image_envs.ensure(framework_version, progress=self._log_line, check=self._check_stop)
        except image_envs.ImagePullError as error:
            raise JobFailure(f"InternalServerError: {error}") from error
        return str(environment.python)

    def _finish_algorithm_output(self) -> None:
        """After the algorithm ended: its log complete, the end marker written, tensors in S3."""
        assert self.algorithm is not None
        for reader in self.algorithm.readers:
            reader.join(timeout=5)
        self._write_end_marker()
        if self._periodic_sync is not None:
            self._periodic_sync.stop()
        if self._tensor_sync is not None:
            try:
                self._tensor_sync.sync()
            except Exception as error:
                raise JobFailure(
                    f"ClientError: uploading the Debugger tensors to {self._tensor_sync.uri} failed: {error}"
                ) from error

    def _write_end_marker(self) -> None:
        """smdebug writes it only outside SageMaker jobs; without it rules never learn training ended."""
        if self.tensors_dir.is_dir():
            marker = self.tensors_dir / END_OF_TRAINING_MARKER
            if not marker.exists():
                marker.touch()

    def _algorithm_failure_reason(self, returncode: int) -> str:
        failure_file = self.opt_ml / "output" / "failure"
        detail = ""
        if failure_file.is_file():
            detail = failure_file.read_text(encoding="utf-8", errors="replace").strip()
        if not detail and self.algorithm is not None:
            detail = "\n".join(self.algorithm.stderr_tail).strip()
        if not detail:
            detail = f"the algorithm process exited with code {returncode}"
        return truncate(f"AlgorithmError: {detail}")

    def _upload_model_and_complete(self) -> None:
        self.status.transition("Uploading")
        artifacts = self._upload_model()
        fields: dict[str, Any] = {"ModelArtifacts": {"S3ModelArtifacts": artifacts}}
        if self.algorithm is not None and self.algorithm.last_metrics is not None:
            seen_at, metrics = self.algorithm.last_metrics
            fields["FinalMetricDataList"] = [
                {"MetricName": name, "Value": value, "Timestamp": seen_at} for name, value in metrics
            ]
        self.status.update(**fields)
        self._end_training("Completed")

    def _upload_model(self) -> str:
        """Tar `opt_ml/model/*` (files at the archive root) and upload it; returns its S3 URI."""
        model_dir = self.opt_ml / "model"
        tarball = self.opt_ml / "output" / MODEL_FILE
        write_model_tarball(model_dir, tarball)
        output_path = (self.job.get("OutputDataConfig") or {}).get("S3OutputPath")
        if not output_path:
            raise JobFailure(
                "ClientError: OutputDataConfig.S3OutputPath is missing: nowhere to upload the model."
            )
        uri = s3io.join_s3_uri(output_path, self.name, "output", MODEL_FILE)
        try:
            s3io.upload_file(self._s3, tarball, uri)
        except Exception as error:
            raise JobFailure(f"ClientError: uploading the model to {uri} failed: {error}") from error
        return uri

    def _end_training(self, final: str) -> None:
        """Enter a terminal secondary status with SageMaker's end-of-job times."""
        now = time.time()
        start = float(self.status.data.get("TrainingStartTime") or now)
        seconds = max(1, int(round(now - start))) if "TrainingStartTime" in self.status.data else 0
        self.status.data.update(TrainingEndTime=now)
        if seconds:
            self.status.data.update(TrainingTimeInSeconds=seconds, BillableTimeInSeconds=seconds)
        if self._log is not None:  # the job's lines are in CloudWatch before its status says it ended
            self._log.flush(timeout=5.0)
        self.status.transition(final, at=now)

    # ---------------------------------------------------------------- rules

    def _start_rules(self) -> None:
        """One process per rule, as SageMaker runs one processing job per rule: its stdout and stderr go line by line
        to `<rule dir>/stdout.log` / `stderr.log` and, as the rule job's log, to CloudWatch Logs group
        `/aws/sagemaker/ProcessingJobs`, stream `<rule job name>/algo-1-<epoch>` (`store.rule_evaluation_job_name`,
        the job `RuleEvaluationJobArn` names)."""
        module = os.environ.get(RULES_MODULE_ENV) or DEFAULT_RULES_MODULE
        for config in self.rules_config:
            name = config["RuleConfigurationName"]
            rule_dir = self.job_dir / "rules" / rule_dir_name(name)
            rule_dir.mkdir(parents=True, exist_ok=True)
            write_json_atomic(rule_dir / "config.json", config)
            result = rule_dir / "result.json"
            result.unlink(missing_ok=True)
            stderr_path = rule_dir / "stderr.log"
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    module,
                    "--trial-path",
                    str(self.tensors_dir),
                    "--config",
                    str(rule_dir / "config.json"),
                    "--result",
                    str(result),
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=_child_env(self.job_dir),
                cwd=rule_dir,
                start_new_session=True,
                # Rules finish after training anyway: never take CPU from the algorithm.
                preexec_fn=_lower_priority,
            )
            child = Child(f"rule {name}", process)
            self.children.append(child)
            log = HostLog(
                rule_dir / "logs" / f"{HOST}.log",
                lambda: s3io.aws_client("logs", self.region),
                cwlogs.log_stream_name(rule_evaluation_job_name(self.name, name), time.time(), HOST),
                cwlogs.PROCESSING_LOG_GROUP,
            )
            run = RuleRun(name, child, result, stderr_path, log)
            for stream, path in ((process.stdout, rule_dir / "stdout.log"), (process.stderr, stderr_path)):
                reader = threading.Thread(target=_tee_to, args=(stream, path, log), daemon=True,
                                          name=f"rule-{'err' if path == stderr_path else 'out'}")
                reader.start()
                run.readers.append(reader)
            self.rules[name] = run

    def _poll_rules(self) -> None:
        """Publish the result of every rule that finished since the last poll."""
        for name in self.status.pending_rules():
            run = self.rules.get(name)
            if run is None:
                continue
            returncode = run.child.process.poll()
            if returncode is None and not run.result_path.exists():
                continue
            result = read_json(run.result_path) if run.result_path.exists() else None
            if result is not None and result.get("RuleEvaluationStatus") in RULE_RESULT_STATUSES:
                run.finish_log()  # the process exits right after its result: its last lines first
                self.status.set_rule(name, result["RuleEvaluationStatus"], result.get("StatusDetails"))
            elif returncode is not None:
                run.finish_log()
                self.status.set_rule(name, "Error", self._rule_crash_details(run, returncode))

    @staticmethod
    def _rule_crash_details(run: RuleRun, returncode: int) -> str:
        last_line = ""
        try:
            lines = [
                line for line in run.stderr_path.read_text(errors="replace").splitlines() if line.strip()
            ]
            last_line = lines[-1].strip() if lines else ""
        except OSError:
            pass
        details = f"The rule evaluation process exited with code {returncode} without a result"
        return f"{details}: {last_line}" if last_line else details + "."

    def _await_rules(self) -> None:
        """Rules outlive training, as on SageMaker; this process ends when every rule is terminal."""
        timeout = float(os.environ.get(RULE_TIMEOUT_ENV) or DEFAULT_RULE_TIMEOUT_SECONDS)
        deadline = (self.training_ended_at or time.time()) + timeout
        while self.status.pending_rules():
            self._poll_rules()
            if not self.status.pending_rules():
                break
            if self._stop.requested():
                self._stop_rules()
                return
            if time.time() > deadline:
                pending = self.status.pending_rules()
                self._terminate([self.rules[name].child for name in pending if name in self.rules])
                for name in pending:
                    self.status.set_rule(
                        name,
                        "Error",
                        f"The rule evaluation did not finish within {timeout:.0f} s after training ended.",
                    )
                return
            time.sleep(POLL_SECONDS)

    def _stop_rules(self) -> None:
        pending = self.status.pending_rules()
        for name in pending:
            self.status.set_rule(name, "Stopping", save=False)
        self.status.save()
        self._terminate([self.rules[name].child for name in pending if name in self.rules])
        for name in pending:
            self.status.set_rule(name, "Stopped", save=False)
        self.status.save()

    # ---------------------------------------------------------------- stop / failure

    def _check_stop(self) -> None:
        self._stop.check()

    def _stop_job(self, final: str) -> None:
        """Stopping -> terminate everything -> Stopped (or MaxRuntimeExceeded), rules Stopped.

        Like SageMaker, what the algorithm saved in /opt/ml/model by then is still uploaded."""
        self.status.transition("Stopping", save=False)
        for name in self.status.pending_rules():
            self.status.set_rule(name, "Stopping", save=False)
        self.status.save()
        self._terminate(self.children)
        if self.training_started_at is not None and self.training_ended_at is None:
            self.training_ended_at = time.time()
        for upload in (self._final_tensor_sync_best_effort, self._model_upload_best_effort):
            upload()
        for name in self.status.pending_rules():
            self.status.set_rule(name, "Stopped", save=False)
        self._end_training(final)

    def _final_tensor_sync_best_effort(self) -> None:
        if self._periodic_sync is not None:
            self._periodic_sync.stop()
        if self._tensor_sync is not None:
            try:
                self._tensor_sync.sync()
            except Exception:
                logger.exception("tensor upload after stop failed")

    def _model_upload_best_effort(self) -> None:
        model_dir = self.opt_ml / "model"
        if self._s3 is None or not model_dir.is_dir() or not any(model_dir.iterdir()):
            return
        try:
            self.status.data["ModelArtifacts"] = {"S3ModelArtifacts": self._upload_model()}
        except Exception:
            logger.exception("model upload after stop failed")

    def _fail(self, reason: str) -> None:
        """Training failed; rules that never started cannot evaluate anything."""
        self.status.data["FailureReason"] = truncate(reason)
        for name in self.status.pending_rules():
            if name not in self.rules:
                self.status.set_rule(
                    name,
                    "Error",
                    "The rule evaluation did not run: the training job failed before training started.",
                    save=False,
                )
        self._end_training("Failed")

    def _fail_internal(self, error: BaseException) -> None:
        """An unexpected error: end everything, say what happened, never leave InProgress behind."""
        self._terminate(self.children)
        reason = truncate(
            f"InternalServerError: the local training supervisor failed: {type(error).__name__}: {error}"
        )
        if not self.status.is_terminal:
            self.status.data["FailureReason"] = reason
        for name in self.status.pending_rules():
            self.status.set_rule(name, "Error", reason, save=False)
        if self.status.is_terminal:
            self.status.save()
        else:
            self._end_training("Failed")

    @staticmethod
    def _terminate(children: list[Child]) -> None:
        terminate(children)

    # ---------------------------------------------------------------- job log

    def _start_log(self, started: float) -> None:
        self._log = HostLog(
            self.job_dir / "logs" / f"{HOST}.log",
            lambda: s3io.aws_client("logs", self.region),
            cwlogs.log_stream_name(self.name, started, HOST),
            cwlogs.TRAINING_LOG_GROUP,
        )

    def _tee(self, stream: IO[bytes], is_stderr: bool) -> None:
        """Copy one output stream of the algorithm, line by line, to the job log and CloudWatch."""
        assert self.algorithm is not None
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            now = self._log_line(line)
            if is_stderr and line.strip():
                self.algorithm.stderr_tail.append(line)
            metrics = parse_metric_line(line)
            if metrics:
                self.algorithm.last_metrics = (now, metrics)
        stream.close()

    def _log_line(self, line: str) -> float:
        """One line of the job log (file and CloudWatch); returns its time."""
        return self._log.line(line) if self._log is not None else time.time()

    def _close_logs(self) -> None:
        for run in self.rules.values():
            run.finish_log(timeout=1.0)
        if self._log is not None:
            self._log.close()

    # ---------------------------------------------------------------- helpers

    @staticmethod
    def _region(job: dict[str, Any]) -> str:
        if job.get("Region"):
            return str(job["Region"])
        arn = job.get("TrainingJobArn", "")
        parts = arn.split(":")
        if len(parts) > 3 and parts[3]:
            return parts[3]
        return os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or "us-east-1"


def _tee_to(stream: IO[bytes], path: Path, log: HostLog) -> None:
    """Copy one output stream of a rule process, line by line, to its file and to the rule job's log."""
    with path.open("wb") as copy:
        for raw in iter(stream.readline, b""):
            copy.write(raw)
            copy.flush()
            log.line(raw.decode("utf-8", errors="replace").rstrip("\r\n"))
    stream.close()


def write_model_tarball(model_dir: Path, tarball: Path) -> None:
    """`model.tar.gz` with the contents of `model_dir` at its root, as SageMaker packs /opt/ml/model."""
    tarball.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarball, "w:gz", compresslevel=6) as archive:
        if model_dir.is_dir():
            for entry in sorted(model_dir.iterdir()):
                archive.add(entry, arcname=entry.name)


def main(argv: list[str] | None = None) -> int:
    return supervisor_main("sm_local.supervisor", TrainingJobSupervisor, _EARLY_STOP_SIGNALS, argv)


if __name__ == "__main__":
    sys.exit(main())
