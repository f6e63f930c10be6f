"""Create (or just print) the Databricks job: log + register the model in Unity Catalog, then batch
generation over a table of prompts on a p5.48xlarge cluster (cluster_p5.json, job_batch.json).

    python integrations/databricks/submit_job.py --dry-run                 # print the job JSON
    python integrations/databricks/submit_job.py --git-url https://github.com/<org>/mla.c --run-now
Authentication is databricks-sdk's (DATABRICKS_HOST + DATABRICKS_TOKEN, or a ~/.databrickscfg profile).
The specs are parsed with databricks-sdk's own dataclasses (JobSettings, ClusterSpec) before use, so
a misspelt field fails here rather than in the workspace.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def load_specs(cluster_path: str | None = None, job_path: str | None = None) -> dict:
    with open(cluster_path or os.path.join(HERE, "cluster_p5.json")) as f:
        cluster = json.load(f)
    with open(job_path or os.path.join(HERE, "job_batch.json")) as f:
        job = json.load(f)
    for jc in job.get("job_clusters", []):
        jc["new_cluster"] = cluster
    return job


def validate(job: dict) -> dict:
    """Round-trip through databricks-sdk's JobSettings: unknown or misspelt fields are dropped by
    from_dict, so any difference means the spec has a field the Jobs API does not know."""
    from databricks.sdk.service.jobs import JobSettings
    again = JobSettings.from_dict(job).as_dict()
    if again != job:
        missing = sorted(set(json.dumps(job, sort_keys=True).split(",")) -
                         set(json.dumps(again, sort_keys=True).split(",")))
        raise ValueError("job spec has fields the Jobs API does not know: %s" % missing[:5])
    return job


def build_parser():
    p = argparse.ArgumentParser(prog="submit_job.py", description="Databricks job for MLA batch generation.")
    p.add_argument("--cluster", help="cluster spec JSON (default cluster_p5.json)")
    p.add_argument("--job", help="job spec JSON (default job_batch.json)")
    p.add_argument("--git-url", help="repository URL for the job's git_source")
    p.add_argument("--git-branch", default="main")
    p.add_argument("--workers", type=int, help="override num_workers of the cluster")
    p.add_argument("--dry-run", action="store_true", help="print the job JSON, create nothing")
    p.add_argument("--run-now", action="store_true", help="start a run after creating the job")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    job = load_specs(args.cluster, args.job)
    if args.git_url:
        job["git_source"] = {"git_url": args.git_url, "git_provider": "gitHub", "git_branch": args.git_branch}
    if args.workers is not None:
        for jc in job["job_clusters"]:
            jc["new_cluster"]["num_workers"] = args.workers
    validate(job)
    if args.dry_run:
        print(json.dumps(job, indent=2))
        return 0
    from databricks.sdk import WorkspaceClient
    from databricks.sdk.service.jobs import JobSettings
    w = WorkspaceClient()
    created = w.jobs.create(**JobSettings.from_dict(job).__dict__)
    print(json.dumps({"job_id": created.job_id}))
    if args.run_now:
        run = w.jobs.run_now(job_id=created.job_id)
        print(json.dumps({"run_id": run.run_id}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
