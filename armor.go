package fieldseal

import (
	"encoding/base64"
	"errors"
	"strings"
)

// Dearmor decodes an ASCII-armored OpenPGP message (RFC 4880 section 6.2)
// as pgcrypto's armor() and gpg --armor write it, checking its CRC-24
// when it has one. Errors say what is wrong, never what the text holds.
func Dearmor(s string) ([]byte, error) {
	lines := strings.Split(strings.ReplaceAll(strings.TrimSpace(s), "\r\n", "\n"), "\n")
	if len(lines) < 3 || strings.TrimSpace(lines[0]) != "-----BEGIN PGP MESSAGE-----" {
		return nil, errors.New("no BEGIN PGP MESSAGE line")
	}
	if strings.TrimSpace(lines[len(lines)-1]) != "-----END PGP MESSAGE-----" {
		return nil, errors.New("no END PGP MESSAGE line")
	}
	lines = lines[1 : len(lines)-1]
	// Armor headers ("Key: value") end at the first blank line.
	for len(lines) > 0 && strings.TrimSpace(lines[0]) != "" {
		if !strings.Contains(lines[0], ": ") {
			return nil, errors.New("no blank line after the armor headers")
		}
		lines = lines[1:]
	}
	if len(lines) == 0 {
		return nil, errors.New("no message")
	}
	var body strings.Builder
	checksum := ""
	for _, l := range lines[1:] {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "=") {
			checksum = l[1:]
			continue
		}
		body.WriteString(l)
	}
	data, err := base64.StdEncoding.DecodeString(body.String())
	if err != nil || len(data) == 0 {
		return nil, errors.New("its body is not base64")
	}
	if checksum != "" {
		sum, err := base64.StdEncoding.DecodeString(checksum)
		if err != nil || len(sum) != 3 {
			return nil, errors.New("its checksum line is not 4 base64 characters")
		}
		if c := crc24(data); byte(c>>16) != sum[0] || byte(c>>8) != sum[1] || byte(c) != sum[2] {
			return nil, errors.New("its checksum does not match: the text was altered")
		}
	}
	return data, nil
}

// crc24 is OpenPGP's CRC-24 (RFC 4880 section 6.1).
func crc24(data []byte) uint32 {
	crc := uint32(0xB704CE)
	for _, b := range data {
		crc ^= uint32(b) << 16
		for range 8 {
			crc <<= 1
			if crc&0x1000000 != 0 {
				crc ^= 0x1864CFB
			}
		}
	}
	return crc & 0xFFFFFF
}
