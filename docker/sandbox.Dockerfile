# Image of the `docker` sandbox backend (selfgym.envs.code.docker_backend): a plain Python with
# the standard library only. The fork server arrives on the command line (`python3 -c ...`), so
# the image holds no selfgym code and does not need rebuilding when selfgym changes.
#
#   docker build -f docker/sandbox.Dockerfile -t selfgym-sandbox:latest docker/
#
# The backend runs each worker container with --network none, a read-only root filesystem,
# tmpfs /work /tmp /dev/shm, memory / CPU / pids limits, no-new-privileges, and every capability
# dropped except SETUID SETGID KILL CHOWN DAC_OVERRIDE FOWNER: the fork server (root inside the
# container) needs those to hand each child a fresh unprivileged uid, kill what it leaves behind
# and wipe its files. The submitted code itself always runs as that unprivileged uid.
FROM python:3.11-slim-bookworm

ENV LANG=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# Mount points of the tmpfs the backend attaches (the root filesystem is read-only at run time).
RUN mkdir -p /work && chmod 0755 /work

WORKDIR /work
USER root
CMD ["python3", "-c", "print('selfgym sandbox image: its containers are started by the docker backend')"]
