"""Realtime sessions: the blocking facade over WebRTC (filled in by the session work)."""
