"""Background jobs (fine-tuning) that survive crashes: start, watch, cancel, resume, list."""

from core.jobs.runner import (
    JobError,
    JobLockedError,
    JobSpec,
    cancel_job,
    job_status,
    list_jobs,
    read_comparison,
    resume_job,
    start_job,
    wait_job,
)

__all__ = [
    "JobError", "JobLockedError", "JobSpec", "cancel_job", "job_status", "list_jobs", "read_comparison",
    "resume_job", "start_job", "wait_job",
]
