"""The jobs' one error type, in its own module so that each job kind (core.jobs.adapt_job) can raise it
without importing the runner that imports them."""


class JobError(RuntimeError):
    """A job request that cannot be honoured; the message says why and what to do."""
