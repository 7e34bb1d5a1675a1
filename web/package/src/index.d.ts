/** Which device runs the model: WebGPU, the CPU (wasm), or WebGPU with a checked CPU fallback. */
export type DeviceChoice = 'auto' | 'webgpu' | 'cpu';

export interface LoadProgress {
  stage: 'download' | 'init';
  file?: string;
  loaded?: number;
  total?: number;
  cached?: boolean;
  device?: DeviceChoice;
}

export interface ModelInfo {
  name: string;
  classes: string[];
  imageSize: number;
  grid: [number, number];
  codebookSize: number;
  /** The device actually used. */
  device: 'webgpu' | 'cpu';
  adapter: string;
  loadMs: number;
  /** Why `auto` fell back to the CPU, if it did. */
  fallbackReason?: string;
  defaults: { temperature: number; topK: number; topP: number; guidance: number };
}

export interface GenerateOptions {
  /** Class index or name (e.g. "Sneaker"). */
  class: number | string;
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
  /** Send a preview every this many tokens (default: one grid row; 0 = never). */
  previewEvery?: number;
  onToken?: (e: { position: number; total: number; tokens: Uint32Array }) => void;
  onPreview?: (e: { position: number; total: number; images: ImageData[] }) => void;
}

export interface GenerateResult {
  images: ImageData[];
  /** All images' RGBA bytes, back to back. */
  pixels: Uint8ClampedArray;
  /** Sampled tokens, raster order, one array per image. */
  tokens: number[][];
  device: 'webgpu' | 'cpu';
  ms: number;
  msPerImage: number;
  width: number;
  height: number;
}

export declare class Generator {
  readonly info: ModelInfo;
  generate(options: GenerateOptions): Promise<GenerateResult>;
  decode(tokens: ArrayLike<number>[]): Promise<Omit<GenerateResult, 'tokens' | 'ms' | 'msPerImage'>>;
  proposalLogits(classIndex: number, tokens: ArrayLike<number>): Promise<Float32Array>;
  dispose(): void;
}

export interface LoadOptions {
  /** URL of the bundle folder (the one holding manifest.json). */
  modelUrl: string;
  device?: DeviceChoice;
  onProgress?: (p: LoadProgress) => void;
  /** Cache weights with the Cache API (default true). */
  cache?: boolean;
  /** Override the worker script URL (bundlers that relocate files). */
  workerUrl?: string | URL;
}

export declare function loadGenerator(options: LoadOptions): Promise<Generator>;
