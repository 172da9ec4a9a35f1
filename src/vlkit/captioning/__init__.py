"""Using a captioner: decoding settings, generation with the cross-attention behind each word, attention
maps, CLIPScore and every caption metric of in-memory captions, and the retrieval baseline."""
