/** Which device runs the model: WebGPU, the CPU (wasm), or WebGPU with a checked CPU fallback. */
export type DeviceChoice = 'auto' | 'webgpu' | 'cpu';

/** Tokenizer kinds of the paper: pixel reconstruction (vqgan, fsq) or image-understanding features (vqkd, cluster). */
export type TokenizerKind = 'vqgan' | 'fsq' | 'vqkd' | 'cluster';

/**
 * What went wrong, as `error.name` and `error.code` of every rejection (see `protocol.js`):
 * BundleError (unreadable or inconsistent bundle), InvalidOption / InvalidTokens (a bad argument;
 * the generator stays usable), DeviceError, NetworkError, AbortError (cancelled by a signal),
 * Disposed (after `dispose()`), WorkerCrashed (the worker died).
 */
export type ErrorKind = 'BundleError' | 'InvalidOption' | 'InvalidTokens' | 'DeviceError' | 'NetworkError' | 'AbortError' | 'Disposed' | 'WorkerCrashed' | 'Error';

export declare class TesseraError extends Error {
  readonly name: ErrorKind;
  readonly code: ErrorKind;
}
export declare const ERROR_KINDS: readonly ErrorKind[];

export interface LoadProgress {
  /** 'ready': the model is loaded (the last event before the promise resolves). */
  stage: 'download' | 'init' | 'ready';
  file?: string;
  loaded?: number;
  total?: number;
  cached?: boolean;
  device?: DeviceChoice;
}

export interface SamplingDefaults {
  /** 'ar' = autoregressive GPT, 'nar' = MaskGIT. */
  kind: 'ar' | 'nar';
  temperature: number;
  topK: number;
  topP: number;
  guidance: number;
  /** NAR: parallel decoding steps. */
  steps: number;
  /** NAR: Gumbel noise on confidences, annealed to 0. */
  confidenceNoise: number;
}

/** Counts of WebGPU calls made by a generator's worker (see `Generator.gpuCounters`). */
export interface GpuCounters {
  /** Compute dispatches (`dispatchWorkgroups` and its indirect form). */
  dispatches: number;
  computePasses: number;
  bufferCopies: number;
  /** Queue submissions. */
  submits: number;
  /** `queue.writeBuffer` calls (uploads). */
  bufferWrites: number;
  /** `buffer.mapAsync` calls: read-backs to the CPU, each a GPU -> CPU round trip. */
  readbacks: number;
  buffersCreated: number;
  pipelinesCreated: number;
  bindGroupsCreated: number;
  /** False where the worker has no WebGPU at all. */
  installed: boolean;
}

export interface ModelInfo {
  name: string;
  classes: string[];
  /** Pixels per side of generated and reconstructed images. */
  imageSize: number;
  /** 1 (gray) or 3 (RGB): what the model works in; images are always RGBA. */
  channels: number;
  /** The data set the model was trained on (`fashion-mnist`, `emoji`, a folder's name). */
  dataset: string;
  /** Gray level (0-255) of the training images' background: transparent input pixels become it. */
  background: number;
  /** Sources and licences of the training images, to show beside generated images. */
  credits: string[];
  grid: [number, number];
  tokenizer: TokenizerKind;
  codebookSize: number;
  /** The device actually used. */
  device: 'webgpu' | 'cpu';
  adapter: string;
  loadMs: number;
  /**
   * Which wasm build runs the model: 'full' (WebGPU + CPU), 'cpu' (the CPU-only engine, a smaller
   * download: used for `device: 'cpu'`, and for 'auto' when the browser has no WebGPU adapter) or
   * 'cpu-threads' (the CPU-only engine on a pool of wasm threads: a cross-origin isolated page).
   */
  engine: 'full' | 'cpu' | 'cpu-threads';
  /** Threads the CPU computes on (1 but for the 'cpu-threads' engine). */
  threads: number;
  /** Why the threaded CPU engine was asked for and not used, if so. */
  threadsFallbackReason?: string;
  /** Why `auto` fell back to the CPU, if it did. */
  fallbackReason?: string;
  /** Loaded proposal networks by name ('ar', 'nar') with their default sampling options. */
  proposals: Record<string, SamplingDefaults>;
  /** Text-to-image bundles only: generate with `prompt` instead of `class`. */
  text?: TextInfo;
}

export interface TextInfo {
  /** Text positions of a prompt ([CLS] ... [SEP]); longer prompts are cut (`truncated`). */
  nCtx: number;
  /** 'learned': the in-project encoder, inside the bundle; 'pretrained': a separate encoder. */
  encoder: 'learned' | 'pretrained';
  encoderName: string;
  /** Size of a pretrained text encoder's weights file (a separate download; 0 for the in-project encoder). */
  encoderBytes: number;
  /** Every word of the training captions, most frequent first (prompt suggestions). */
  words: string[];
  /** Example prompts (training captions spread over the classes). */
  examples: string[];
}

/** What a prompt became, and what of it the model cannot read (show it: nothing is dropped silently). */
export interface PromptReport {
  /** Text token ids, [CLS] ... [SEP]. */
  ids: number[];
  /** Words with characters outside the vocabulary (the unknown token stands in for them). */
  unknown: string[];
  /** Words the training captions never contained. */
  unseen: string[];
  /** The prompt was longer than nCtx tokens and was cut. */
  truncated: boolean;
}

export interface StepEvent {
  /** Steps taken (tokens for AR, parallel decoding steps for NAR) and their total. */
  position: number;
  total: number;
  /** Per image: the [position, token] pairs set by this step. */
  revealed: [number, number][][];
}

export interface GenerateOptions {
  /** Proposal network: 'ar' (default when loaded) or 'nar'. */
  proposal?: string;
  /** Class-conditional bundles: class index or name (e.g. "Sneaker"). */
  class?: number | string;
  /** Text-to-image bundles (`info.text`): the prompt, at most 1,000 characters; "" = unconditional. */
  prompt?: string;
  /** Images to generate (1..64, default 1). */
  count?: number;
  /** Same seed, same tokens. Default 0. */
  seed?: number;
  temperature?: number;
  /** 0 = off. */
  topK?: number;
  /** 1 = off. */
  topP?: number;
  /** Classifier-free guidance scale; 1 = off. */
  guidance?: number;
  /** NAR: parallel decoding steps (1..256). */
  steps?: number;
  /** NAR: confidence noise (0 = greedy by confidence). */
  confidenceNoise?: number;
  /** NAR inpainting: one grid per image; numbers are kept, nulls resampled (see `inpaint`). */
  given?: (number | null)[][];
  /** Send a preview every this many steps (default: a grid row for AR, every step for NAR; 0 = never). */
  previewEvery?: number;
  onStep?: (e: StepEvent) => void;
  /** AR convenience: the token each image got at this step. */
  onToken?: (e: { position: number; total: number; tokens: (number | undefined)[] }) => void;
  onPreview?: (e: { position: number; total: number; images: ImageData[] }) => void;
  /** Cancels the generation after its current step: the promise rejects with an AbortError. */
  signal?: AbortSignal;
}

export interface ImagesResult {
  images: ImageData[];
  /** All images' RGBA bytes, back to back. */
  pixels: Uint8ClampedArray;
  device: 'webgpu' | 'cpu';
  width: number;
  height: number;
}

export interface GenerateResult extends ImagesResult {
  /** Sampled tokens, raster order, one array per image. */
  tokens: number[][];
  proposal: string;
  ms: number;
  msPerImage: number;
  /** Text-to-image: what the prompt became (ids, unknown and unseen words, truncation). */
  prompt?: PromptReport;
}

export interface ReconstructResult extends ImagesResult {
  /** The tokenizer's token map of each input image, raster order. */
  tokens: number[][];
}

export interface InpaintOptions extends Omit<GenerateOptions, 'given' | 'count'> {
  /** Token grids to edit, one per image. */
  tokens: ArrayLike<number>[];
  /** Same shape (one boolean per token): true where the tokens are resampled. */
  mask: ArrayLike<boolean>[];
}

export declare class Generator {
  readonly info: ModelInfo;
  /** grid[0] x grid[1]. */
  readonly tokensPerImage: number;
  generate(options: GenerateOptions): Promise<GenerateResult>;
  /** NAR inpainting: resample the masked tokens, keep the rest. */
  inpaint(options: InpaintOptions): Promise<GenerateResult>;
  /** Tokenize and decode images (scaled to imageSize). */
  reconstruct(images: ImageData | ImageBitmapSource | (ImageData | ImageBitmapSource)[]): Promise<ReconstructResult>;
  decode(tokens: ArrayLike<number>[]): Promise<ImagesResult>;
  /** `prompt`: text-to-image bundles (then `classIndex` is ignored). */
  proposalLogits(proposal: string, classIndex: number, tokens: ArrayLike<number | null>, prompt?: string): Promise<Float32Array>;
  /** Stops the worker: pending and later calls reject with a 'Disposed' TesseraError. */
  /**
   * WebGPU calls of the model's worker since it started: take two snapshots around a call and
   * subtract (e.g. dispatches per sampling step). All zero on the CPU.
   */
  gpuCounters(): Promise<GpuCounters>;
  dispose(): void;
}

export interface LoadOptions {
  /** URL of the bundle folder (the one holding manifest.json). */
  modelUrl: string;
  device?: DeviceChoice;
  /** Proposal networks to download (default: all of the bundle's; [] = tokenizer only, for reconstruction). */
  proposals?: string[];
  onProgress?: (p: LoadProgress) => void;
  /** Cache weights with the Cache API (default true). */
  cache?: boolean;
  /** Override the worker script URL (bundlers that relocate files). */
  workerUrl?: string | URL;
  /**
   * CPU threads (1-64, default 1). More than 1 runs the threaded CPU engine, which needs a cross-origin
   * isolated page (else an InvalidOption error); measured on 2 cores it speeds up NAR at batch 8 and the
   * decoder and slows AR down (its atomics cost every step), hence opt-in.
   */
  threads?: number;
  /** Cancels the download: the promise rejects with an AbortError. */
  signal?: AbortSignal;
}

export declare function loadGenerator(options: LoadOptions): Promise<Generator>;
