"""LLM post-processing of dictated text: Refine and Translate via Ollama or Gemini.

Only text leaves the machine, and only to the provider the user configured.
"""

from v2md.llm.service import LLMService

__all__ = ["LLMService"]
