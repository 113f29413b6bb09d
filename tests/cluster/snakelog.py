"""Read what Snakemake printed: the job blocks of a (dry) run and the SLURM submissions.

A job block, as Snakemake 9 prints it for every job it schedules (indented when inside a group):

    rule restore_shard:            (or `checkpoint x:`, `localrule all:`)
        input: ...
        jobid: 18
        reason: ...
        wildcards: sample=demo01, shard=0
        resources: tmpdir=<TBD>, mem_mb=1000, ..., gpu=1, slurm_partition=gpu, runtime=10

The resources line is the rule's own resources as the workflow evaluated them, so it says which
jobs the workflow tagged for a GPU, independently of what the scheduler later recorded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

HEADER = re.compile(r"^(\s*)(local)?(rule|checkpoint) ([A-Za-z_]\w*):\s*$")
FIELD = re.compile(r"^(\s+)(\w+): ?(.*)$")
SUBMITTED = re.compile(r"^Job (\S+) has been submitted with SLURM jobid (\d+) \(log: (.+)\)\.$")


@dataclass
class Job:
    rule: str
    local: bool = False
    fields: dict[str, str] = field(default_factory=dict)

    @property
    def wildcards(self) -> dict[str, str]:
        return _pairs(self.fields.get("wildcards", ""))

    @property
    def resources(self) -> dict[str, str]:
        return _pairs(self.fields.get("resources", ""))

    @property
    def gpus(self) -> int:
        """The GPUs this job's rule asks for (resources `gpu`, or a `gres` naming gpu)."""
        res = self.resources
        if res.get("gpu", "0").isdigit() and int(res.get("gpu", "0")) > 0:
            return int(res["gpu"])
        match = re.search(r"gpu(?::\w+)?:(\d+)", res.get("gres", ""))
        return int(match.group(1)) if match else 0


def _pairs(text: str) -> dict[str, str]:
    out = {}
    for part in text.split(", "):
        key, sep, value = part.partition("=")
        if sep:
            out[key.strip()] = value.strip()
    return out


def jobs(text: str) -> list[Job]:
    """Every job block in Snakemake's output, in order."""
    found: list[Job] = []
    current, indent = None, ""
    for line in text.splitlines():
        if m := HEADER.match(line):
            current = Job(rule=m.group(4), local=bool(m.group(2)))
            indent = m.group(1)
            found.append(current)
        elif current is not None and (m := FIELD.match(line)) and len(m.group(1)) > len(indent):
            current.fields[m.group(2)] = m.group(3)
        else:
            current = None
    return found


def submissions(text: str) -> dict[str, tuple[str, str]]:
    """SLURM job id -> (Snakemake job or group id, SLURM log path) of every submission."""
    out = {}
    for line in text.splitlines():
        if m := SUBMITTED.match(line.strip()):
            out[m.group(2)] = (m.group(1), m.group(3))
    return out


def split_rules(name: str, known: set[str]) -> list[str] | None:
    """Split '_'-joined rule names (how the plugin names a group's members) into known rules."""
    tokens = name.split("_")
    best: dict[int, list[str]] = {0: []}
    for i in range(len(tokens)):
        if i not in best:
            continue
        for j in range(i + 1, len(tokens) + 1):
            candidate = "_".join(tokens[i:j])
            if candidate in known and j not in best:
                best[j] = [*best[i], candidate]
    return best.get(len(tokens))


def rules_of_comment(comment: str, known: set[str], groups: set[str]) -> list[str]:
    """The rules a SLURM job ran, from the comment the plugin sets.

    One job: `rule_<rule>` or `rule_<rule>_wildcards_<values>`. A group job:
    `rule_<group>_<member rules sorted, joined by _>`.
    """
    name = comment.removeprefix("rule_").split("_wildcards_")[0]
    if name in known:
        return [name]
    for group in sorted(groups, key=len, reverse=True):
        if name.startswith(group + "_") and (members := split_rules(name[len(group) + 1 :], known)):
            return members
    raise AssertionError(f"cannot tell the rules of SLURM job comment {comment!r}")
