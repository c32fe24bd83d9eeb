"""Deployment artefacts checked offline: the Helm chart (rendered by the real helm) and the
Dockerfile (hadolint, and the build's own scripts run here). No cluster, no Docker engine."""
