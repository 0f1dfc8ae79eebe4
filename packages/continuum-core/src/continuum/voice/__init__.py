"""Voice: a persona hears (voice activity, end of turn, speech-to-text) and speaks
(streaming the reply sentence by sentence through a text-to-speech engine)."""
