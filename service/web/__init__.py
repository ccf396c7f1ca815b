"""The web pages: self-service for people who file tickets, the agent view, and the
dashboard and reports for support leads, served by the API's own Litestar app."""

from service.web.pages import web_app_config

__all__ = ["web_app_config"]
