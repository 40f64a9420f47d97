"""The LLM-built listener interest graph: a summary of a listener's listening goes to a provider
(anthropic, openai, or the offline `local` one), which answers with a graph of genres, moods,
artists and eras; the validated graph is stored per listener and scores tracks at ranking time."""
