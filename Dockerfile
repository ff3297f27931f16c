# dagctl and your DAGs in one image: the scheduler runs it as
#   dagctl schedule --manager kubernetes            (the default CMD)
# and every task pod runs the same image (point worker_config.kube_image at it) as
#   dagctl run DAG TASK --run-id RUN --attempt N
#
#   docker build -t registry.example.com/dagctl-dags:1 --build-arg DAGS=path/to/dags .
#
# DAGS is a folder of this build context (default: the example DAGs). Add the tools
# your tasks need (psql, a warehouse client, task type plug-ins) in a stage of your own
# FROM this image.
FROM python:3.12-slim

ARG DAGS=dags_example

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DAGCTL_DAGS=/opt/dagctl/dags

# dagctl itself, with the kubernetes client (the source is not kept in the image).
COPY pyproject.toml README.md /tmp/dagctl-src/
COPY dagctl /tmp/dagctl-src/dagctl
RUN pip install "/tmp/dagctl-src[kubernetes]" && rm -rf /tmp/dagctl-src

# A user without privileges; its state folder holds the default SQLite database of
# one-off commands (the scheduler uses DATABASE_URL).
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/dagctl dagctl

COPY --chown=root:root ${DAGS} /opt/dagctl/dags
WORKDIR /opt/dagctl/dags

USER 10001:10001
ENTRYPOINT ["dagctl"]
CMD ["schedule", "--manager", "kubernetes"]
