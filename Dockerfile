# pipeforge base image: pipeforge installed, served by gunicorn on port 8000.
#
#   docker build -t pipeforge .
#   docker run -p 8000:8000 -v $PWD/examples/iris:/app -w /app \
#       -e PIPEFORGE_CONFIG=/app/config.py pipeforge
#
# Application images build on it with `pf-dockerize APP_DIR pipeforge IMAGE`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/pipeforge
COPY requirements.txt setup.cfg pyproject.toml README.md ./
RUN pip install -r requirements.txt "psycopg[binary]>=3.1"
COPY pipeforge ./pipeforge
RUN pip install --no-deps . \
 && useradd --create-home --uid 10001 pipeforge \
 && mkdir /app && chown pipeforge /app

USER pipeforge
WORKDIR /app
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/alive', timeout=4)" || exit 1

# Set PIPEFORGE_CONFIG (docker run -e ...) to the application's config file;
# GUNICORN_CMD_ARGS tunes gunicorn without changing the command.
ENV GUNICORN_CMD_ARGS="--workers 2 --timeout 60 --graceful-timeout 30"
CMD ["gunicorn", "-b", "0.0.0.0:8000", "pipeforge.wsgi:app"]
