"""Share a generator: the Hugging Face Hub model class (FaceGenerator), the Hub folder with its
model card, and the push. Needs the `app` extra (huggingface_hub); the trainer never imports this."""
