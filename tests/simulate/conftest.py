from tests.support.fixtures import openai_server, refused_base_url

__all__ = ["openai_server", "refused_base_url"]
