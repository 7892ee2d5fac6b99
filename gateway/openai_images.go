// POST /v1/images/generations: OpenAI's image generation API as far as a qdm text-to-image
// model honours it, so OpenAI image clients work unchanged:
//
//	{"prompt": "a photo of a sneaker", "n": 2, "size": "32x32", "response_format": "b64_json", "model": "fmnist-t2i"}
//	-> {"created": 1733600000, "data": [{"b64_json": "<PNG>", "prompt_truncated": false}, ...]}
//
// `model` names a qdm model or quantized artifact (default: --images-model). qdm's own fields
// may be added: negative_prompt, guidance_scale (default --images-guidance), steps, seed.
// response_format "url" is refused (images come back inline); quality, style and user are
// accepted and ignored. Errors are OpenAI's shape, {"error": {"message", "type", "code"}}, with
// the HTTP code of the scheduler's gRPC status.
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	qdm "qdm/gen/qdm/v1"
)

const maxImagesRequestBytes = 1 << 20

type imagesRequest struct {
	Prompt         *string  `json:"prompt"`
	N              *int32   `json:"n"`
	Size           string   `json:"size"`
	ResponseFormat string   `json:"response_format"`
	Model          string   `json:"model"`
	NegativePrompt string   `json:"negative_prompt"`
	GuidanceScale  *float64 `json:"guidance_scale"`
	Steps          int32    `json:"steps"`
	Seed           *uint64  `json:"seed"`
	Quality        string   `json:"quality"`
	Style          string   `json:"style"`
	User           string   `json:"user"`
}

type imageData struct {
	B64JSON         string `json:"b64_json"`
	PromptTruncated bool   `json:"prompt_truncated"`
}

type imagesHandler struct {
	models       qdm.ModelsClient
	sampling     qdm.SamplingClient
	defaultModel string
	guidance     float64
}

func writeJSON(w http.ResponseWriter, code int, v interface{}) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, kind, grpcCode, message string) {
	writeJSON(w, code, map[string]interface{}{"error": map[string]string{"message": message, "type": kind, "code": grpcCode}})
}

// The scheduler's status as OpenAI's error with its HTTP code.
func writeStatus(w http.ResponseWriter, err error) {
	s, _ := status.FromError(err)
	kind := "api_error"
	switch s.Code() {
	case codes.InvalidArgument, codes.NotFound, codes.FailedPrecondition, codes.OutOfRange:
		kind = "invalid_request_error"
	case codes.Unauthenticated, codes.PermissionDenied:
		kind = "authentication_error"
	case codes.ResourceExhausted:
		kind = "rate_limit_error"
	}
	writeError(w, httpStatus(s.Code()), kind, codeName(s.Code()), s.Message())
}

// codes.InvalidArgument -> "invalid_argument" (the gRPC code's canonical name).
func codeName(c codes.Code) string {
	var b strings.Builder
	for i, r := range c.String() {
		if r >= 'A' && r <= 'Z' {
			if i > 0 {
				b.WriteByte('_')
			}
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// "WxH" -> width, height; "" -> the model's default (0, 0).
func parseSize(size string) (int32, int32, error) {
	if size == "" {
		return 0, 0, nil
	}
	parts := strings.Split(size, "x")
	if len(parts) == 2 {
		w, errW := strconv.Atoi(parts[0])
		h, errH := strconv.Atoi(parts[1])
		if errW == nil && errH == nil && w > 0 && h > 0 && w <= 4096 && h <= 4096 {
			return int32(w), int32(h), nil
		}
	}
	return 0, 0, fmt.Errorf("size must be WIDTHxHEIGHT in pixels (for example 256x256), each 1..4096")
}

func (h *imagesHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		writeError(w, http.StatusMethodNotAllowed, "invalid_request_error", "method_not_allowed", "use POST with a JSON body")
		return
	}
	var req imagesRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxImagesRequestBytes))
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "invalid_argument",
			"the body must be a JSON object of at most 1 MiB: prompt (string), n (integer), size (\"WxH\"), response_format, model")
		return
	}
	if req.Prompt == nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "invalid_argument", "prompt is required (\"\" samples unconditionally)")
		return
	}
	if req.ResponseFormat != "" && req.ResponseFormat != "b64_json" {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "invalid_argument",
			"response_format must be b64_json: qdm returns the images inline, not as URLs")
		return
	}
	width, height, err := parseSize(req.Size)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "invalid_argument", err.Error())
		return
	}
	model := req.Model
	if model == "" {
		model = h.defaultModel
	}
	if model == "" {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "invalid_argument",
			"name the model (a qdm model or artifact name), or start qdm-gateway with --images-model")
		return
	}
	// The caller's credentials go with every call; the request's deadline bounds them.
	ctx := r.Context()
	if auth := r.Header.Get("Authorization"); auth != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", auth)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	info, err := h.models.Describe(ctx, &qdm.DescribeModelRequest{Name: model})
	if err != nil {
		writeStatus(w, err)
		return
	}
	n := int32(1)
	if req.N != nil {
		n = *req.N
	}
	guidance := h.guidance
	if req.GuidanceScale != nil {
		guidance = *req.GuidanceScale
	}
	sample := &qdm.SampleRequest{
		NumImages:      n,
		Prompt:         []string{*req.Prompt},
		NegativePrompt: req.NegativePrompt,
		Width:          width,
		Height:         height,
		Sampler:        &qdm.SamplerSpec{Steps: req.Steps},
		XGuidanceScale: &qdm.SampleRequest_GuidanceScale{GuidanceScale: guidance},
	}
	if req.Seed != nil {
		sample.Seed = *req.Seed
	} else {
		sample.Seed = uint64(time.Now().UnixNano())
	}
	if info.Quantized {
		sample.Source = &qdm.SampleRequest_Artifact{Artifact: model}
	} else {
		sample.Source = &qdm.SampleRequest_Model{Model: model}
	}
	answer, err := h.sampling.Sample(ctx, sample)
	if err != nil {
		writeStatus(w, err)
		return
	}
	data := make([]imageData, 0, len(answer.Images))
	for _, img := range answer.Images {
		data = append(data, imageData{B64JSON: base64.StdEncoding.EncodeToString(img.Png), PromptTruncated: img.PromptTruncated})
	}
	writeJSON(w, http.StatusOK, map[string]interface{}{"created": time.Now().Unix(), "data": data})
}
