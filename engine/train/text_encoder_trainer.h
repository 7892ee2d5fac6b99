// Trains the text-to-image model's text side on Fashion-MNIST captions (engine/data/captions.h):
// a byte-level BPE vocabulary learned from the training captions (tokenizer/), and a small
// CLIPTextModel (text_encoder/) taught to name the class from its end-of-text state, as CLIP's
// pooled output is read, through a linear head that is not saved; half the captions carry
// made-up words at random places, so the class is found in unseen phrasing. Each write records the class
// accuracy on held-out phrasings in report.json.
#pragma once

#include <functional>
#include <string>

#include "engine/train/training_loop.h"
#include "format/clip_text_config.h"

namespace qdm {

struct TextEncoderTrainOptions {
  TrainingLoopOptions loop;  // out_dir: the pipeline folder (tokenizer/ and text_encoder/ go there;
                             // the checkpoint and log into text_encoder/)
  int merges = 400;          // BPE merges learned from the captions
  int max_length = 32;       // the tokenizer's model_max_length and the encoder's positions
  int batch_size = 64;
  int threads = 1;
};

// The shipped shape: 64 wide, 2 layers of 4 heads, quick_gelu.
ClipTextConfig fmnist_text_encoder_config(int vocab_size, int max_length);

int64_t train_text_encoder(const TextEncoderTrainOptions& options,
                           const std::function<bool(const TrainingStep&)>& on_log = nullptr);

}  // namespace qdm
