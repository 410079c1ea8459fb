"""`python -m sm_explain.map_job --request R --input DIR --partials DIR --resource-config FILE`: one SageMaker
Processing instance's share of an explanation's map, on a job of `InstanceCount` N with `ShardedByS3Key` inputs.

Every instance runs this same command. SageMaker copies the instance's share of each channel's part files to
`DIR/<channel>/` (the staged paths `train/part-00003.csv`, `validation/validation.csv`); the instance maps every
channel the run reads that it holds a share of (`sm_explain.map.map_channel`) and writes, under `--partials`:
- `<host>-<channel>.partial`, one partial per such channel (`sm_explain.partials`);
- `<host>.json`, its result: the partials it wrote and their parts (an instance with no share writes none).

`<host>` is the instance's `current_host` from `resourceconfig.json` (`algo-1` ...): every instance's files land
under the job's one output prefix, so only distinct names keep one instance's partial from replacing another's.
The reduce (`python -m sm_explain.reduce`) then merges every partial of the job.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sm_explain.errors import BadRequest
from sm_explain_contracts.envelope import exit_process, run_cli

MAX_RESOURCE_CONFIG_BYTES = 1 << 20
# SageMaker names a job's instances algo-1 .. algo-N; anything else would become a file name here.
_HOST = re.compile(r"^algo-[1-9][0-9]{0,3}$")


class ResourceConfigError(RuntimeError):
    """The container's resourceconfig.json is missing or not SageMaker's: an environment fault, not bad input."""


def current_host(resource_config: Path) -> str:
    """The instance's host name, checked before it names a file."""
    try:
        with resource_config.open("rb") as stream:
            data = stream.read(MAX_RESOURCE_CONFIG_BYTES + 1)
        if len(data) > MAX_RESOURCE_CONFIG_BYTES:
            raise ResourceConfigError(f"{resource_config} is over {MAX_RESOURCE_CONFIG_BYTES:,} bytes")
        config = json.loads(data)
    except (OSError, ValueError) as error:
        raise ResourceConfigError(f"cannot read the instance's resource config {resource_config}: {error}") from error
    host = config.get("current_host") if isinstance(config, dict) else None
    hosts = config.get("hosts") if isinstance(config, dict) else None
    if not isinstance(host, str) or not _HOST.fullmatch(host) or not isinstance(hosts, list) or host not in hosts:
        raise ResourceConfigError(
            f"{resource_config} names current_host {host!r} among hosts {hosts!r}: not a SageMaker instance "
            "(algo-1 ...) of this job"
        )
    return host


def _held_channels(channels: list[str], parts: dict[str, list[Any]], input_root: Path) -> list[str]:
    """The channels of which this instance holds some file (a sharded input can leave an instance none)."""
    held = []
    for channel in channels:
        directory = input_root / Path(parts[channel][0].path).parent
        if directory.is_dir() and any(directory.iterdir()):
            held.append(channel)
    return held


def handle(raw: dict[str, Any], host: str, input_root: Path, partials_dir: Path) -> dict[str, Any]:
    from sm_explain.request import parse_request

    request = parse_request(raw)
    from sm_explain.map import map_channel
    from sm_explain.partials import write_partial
    from sm_explain.parts import select_parts
    from sm_explain.run import open_run

    run = open_run(request)
    written = []
    for channel in _held_channels(run.channels, run.parts, input_root):
        selected = select_parts(run.parts[channel], None, str(input_root))
        uri = str(partials_dir / f"{host}-{channel}.partial")
        with contextlib.ExitStack() as cleanup:
            partial = map_channel(run, channel, selected, str(input_root), cleanup)
            write_partial(uri, partial)
        written.append({"channel": channel, "partial": Path(uri).name, "parts": [p.path for p in selected],
                        "rows": partial.n_rows, "mean_abs_shap_method": partial.method})
        print(f"{host}: mapped {len(selected)} part(s) of the {channel} channel ({partial.n_rows} rows)",
              file=sys.stderr, flush=True)
    if not written:
        print(f"{host}: this instance's share holds no part of {', '.join(run.channels)}", file=sys.stderr)
    return {"host": host, "partials": written}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="One Processing instance's map over its share of the parts.")
    parser.add_argument("--request", required=True, type=Path, help="JSON explanation request")
    parser.add_argument("--input", required=True, type=Path, help="where the instance's share of the channels lies")
    parser.add_argument("--partials", required=True, type=Path, help="where the partials and the result go")
    parser.add_argument("--resource-config", required=True, type=Path, help="SageMaker's resourceconfig.json")
    args = parser.parse_args(argv)
    host = current_host(args.resource_config)
    args.partials.mkdir(parents=True, exist_ok=True)
    return run_cli(
        ["--request", str(args.request), "--result", str(args.partials / f"{host}.json")],
        "Map: one Processing instance's share of an explanation's full-data work.",
        lambda raw: handle(raw, host, args.input, args.partials), BadRequest,
    )


if __name__ == "__main__":
    exit_process(main())
