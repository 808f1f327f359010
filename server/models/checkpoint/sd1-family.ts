/**
 * What every SD 1.x model shares and its weights cannot tell: these come from the family's configs
 * (runwayml/stable-diffusion-v1-5's and stable-diffusion-inpainting's unet, vae and scheduler configs).
 */
export const SD1_FAMILY = {
  /** UNet attention heads, whatever the width (diffusers' attention_head_dim 8 is a head count for SD 1.x). */
  unetHeads: 8,
  normGroups: 32,
  /** Latent side the UNet was trained at (512 px / 8). */
  unetSampleSize: 64,
  vaeSampleSize: 512,
  vaeScalingFactor: 0.18215,
  /** CLIP ViT-L/14's heads are 64 wide: 12 heads at 768. */
  clipHeadWidth: 64,
  clipLayerNormEpsilon: 1e-5,
  /** SD 1.5's scheduler/scheduler_config.json: the noise schedule every SD 1.x model was trained on. */
  schedulerConfig: {
    _class_name: "PNDMScheduler",
    num_train_timesteps: 1000,
    beta_start: 0.00085,
    beta_end: 0.012,
    beta_schedule: "scaled_linear",
    steps_offset: 1,
    set_alpha_to_one: false,
    skip_prk_steps: true,
    clip_sample: false,
    prediction_type: "epsilon",
    trained_betas: null,
  },
} as const;
