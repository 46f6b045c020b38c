FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    IRPORTAL_VAR_DIR=/var/lib/irportal

WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY . .
RUN useradd --system --home-dir /app irportal \
    && mkdir -p "$IRPORTAL_VAR_DIR" \
    && chown irportal "$IRPORTAL_VAR_DIR" \
    && DEBUG=true python manage.py collectstatic --noinput
USER irportal

EXPOSE 8000
CMD ["gunicorn", "irportal.wsgi", "--bind", "0.0.0.0:8000", "--workers", "2", "--access-logfile", "-"]
