"""OpenAI's Responses API (/v1/responses), a translator onto the one internal request, with its
stored responses."""
