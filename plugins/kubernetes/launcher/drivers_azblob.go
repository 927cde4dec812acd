//go:build !weir_no_azblob

package launcher

// Azure Blob Storage, azblob://; build with -tags weir_no_azblob to leave it out of a
// launcher that will never use it (the drivers are most of its size).
import _ "gocloud.dev/blob/azureblob"
